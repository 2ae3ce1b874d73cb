"""Shared pieces of the REST API: cursor pagination, the per-app router, the problem schema
and a FilterSet that refuses unknown query parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django_filters import rest_framework as _filters
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import pagination
from rest_framework import serializers as _serializers
from rest_framework.routers import SimpleRouter

from marketerapi.problems import ApplicationError, UnknownFields


class CursorPagination(pagination.CursorPagination):
    """Stable pages over large tables: the cursor is an opaque position on the id."""

    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    ordering = "-id"


class OptionalSlashRouter(SimpleRouter):
    """Paths answer with and without a trailing slash (PRODUCT.md §6). One per app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trailing_slash = "/?"


# --- shared schema pieces and filters (added with the ingestion API) -------------


class ProblemErrorSerializer(_serializers.Serializer):
    """One entry of a problem's `errors`: where, what, and how to fix it."""

    index = _serializers.IntegerField(required=False, help_text="The row of a batch (0-based), for bulk endpoints.")
    pointer = _serializers.CharField(help_text="JSON pointer into the request body, e.g. /profiles/3/region.")
    code = _serializers.CharField()
    message = _serializers.CharField()
    hint = _serializers.CharField()


class ProblemSerializer(_serializers.Serializer):
    """RFC 9457 problem+json, the body of every 4xx and 5xx (for the OpenAPI schema)."""

    type = _serializers.URLField()
    title = _serializers.CharField()
    status = _serializers.IntegerField()
    detail = _serializers.CharField()
    code = _serializers.CharField()
    hint = _serializers.CharField()
    errors = ProblemErrorSerializer(many=True, required=False)
    request_id = _serializers.CharField()


class StrictSerializer(_serializers.Serializer):
    """Refuses fields it does not declare (a typo must not be silently ignored): 400
    `unknown_fields`, one error per unknown field, and the fields the endpoint reads."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                allowed = list(self.fields)
                hint = f"Remove or rename them; this endpoint reads: {', '.join(allowed)}."
                raise UnknownFields(
                    f"Unknown field(s): {', '.join(unknown)}; nothing was applied.",
                    hint=hint,
                    errors=[
                        {
                            "pointer": f"/{name}",
                            "code": "unknown_field",
                            "message": f"Unknown field {name!r}.",
                            "hint": hint,
                        }
                        for name in unknown
                    ],
                    allowed_fields=allowed,
                )
        return super().to_internal_value(data)


class UnknownQueryParameters(ApplicationError):
    status = 400
    code = "unknown_query_parameter"
    title = "The query names parameters this endpoint does not know"


class StrictFilterSet(_filters.FilterSet):
    """A FilterSet that refuses unknown query parameters instead of ignoring them,
    so a typo (`?regoin=EU`) never silently returns everything."""

    # Parameters read by pagination and rendering rather than by the filters.
    extra_parameters: frozenset[str] = frozenset({"cursor", "limit", "format"})

    def is_valid(self) -> bool:
        unknown = sorted(set(self.data) - set(self.filters) - self.extra_parameters)
        if unknown:
            allowed = sorted(set(self.filters) | self.extra_parameters)
            raise UnknownQueryParameters(
                f"Unknown query parameter(s): {', '.join(unknown)}.",
                hint=f"Use only: {', '.join(allowed)}.",
                errors=[
                    {
                        "pointer": "",
                        "parameter": name,
                        "code": "unknown_query_parameter",
                        "message": f"{name!r} is not a parameter of this endpoint.",
                        "hint": f"Use one of: {', '.join(allowed)}.",
                    }
                    for name in unknown
                ],
                allowed_parameters=allowed,
            )
        return super().is_valid()


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI security scheme for governance.auth.BearerTokenAuthentication."""

    target_class = "governance.auth.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mk_<environment>_<secret>",
            "description": "An API token; its environment (sandbox, pilot, production, …) scopes every object.",
        }


class PortalSessionScheme(OpenApiAuthenticationExtension):
    """OpenAPI security scheme for governance.auth.PortalSessionAuthentication."""

    target_class = "governance.auth.PortalSessionAuthentication"
    name = "portalSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
