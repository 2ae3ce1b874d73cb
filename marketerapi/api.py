"""What every API module shares, once: the actor of a request, cursor pagination (one
rule for `cursor` and `limit`), the per-app router, the problem schema and the OpenAPI
failure descriptions, a serializer and a FilterSet that refuse what they do not know."""

from __future__ import annotations

from base64 import b64decode
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar
from urllib import parse

from django import forms
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django_filters import rest_framework as _filters
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions as _drf_exceptions
from rest_framework import pagination
from rest_framework import serializers as _serializers
from rest_framework.request import Request
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from marketerapi.problems import ApplicationError, UnknownFields

if TYPE_CHECKING:
    from governance.actors import Actor


class ActorMixin(APIView):
    """`self.actor`: who calls this API view (token or portal session), built once per request.

    `policy_actions` names the policy action of each method that changes state
    (`{"PATCH": "webhook.update"}`). A refusal raised before the service is reached — the role
    check of the selector that loads the object asks about *reading* it, and a read refusal is
    not audited — is then recorded as a denied attempt of that action, as the service's own
    refusal would have been: every refused change leaves its audit row, whichever check said no.
    """

    policy_actions: ClassVar[dict[str, str]] = {}

    @cached_property
    def actor(self) -> Actor:
        from governance.actors import actor_from_request

        return actor_from_request(self.request)

    def handle_exception(self, exc: Exception) -> Any:
        _audit_refused_change(self, exc)
        return super().handle_exception(exc)


def _audit_refused_change(view: ActorMixin, exc: Exception) -> None:
    from governance.policy.actions import ACTIONS
    from governance.policy.engine import PolicyDenied

    method = view.request.method or ""
    action = view.policy_actions.get(method)
    if action is None or not isinstance(exc, PolicyDenied) or getattr(exc, "denial", None) is not None:
        return  # not a change, not a policy refusal, or already audited by policy.require
    if not ACTIONS[action].unsafe:
        return
    from django.db import transaction

    from governance.audit import trail as audit
    from governance.models import Outcome

    with transaction.atomic():
        audit.record(
            view.actor,
            action,
            outcome=Outcome.DENIED,
            reasons=[exc.detail],
            changes={"refused": {"method": method, "path": view.request.path, "rule": exc.extra.get("rule", "")}},
        )


# --- pagination -------------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class InvalidCursor(ApplicationError):
    status = 400
    code = "invalid_cursor"
    title = "The cursor is not valid"
    hint = "Follow the `next` or `previous` link exactly as returned, with the same filters, or start without a cursor."


class InvalidLimit(ApplicationError):
    status = 400
    code = "invalid_limit"
    title = "The page size is not valid"
    hint = f"Send ?limit= as a whole number from 1 to {MAX_PAGE_SIZE:,} (default {DEFAULT_PAGE_SIZE})."


def page_size_from(raw: Any, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """`?limit=`: absent is the default; anything but a whole number from 1 to `maximum` is a 400."""
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= maximum:
        raise InvalidLimit(f"limit must be a whole number from 1 to {maximum:,}; got {str(raw)[:40]!r}.")
    return value


def _well_formed(raw: str, extra_keys: frozenset[str] = frozenset()) -> bool:
    """DRF's cursor is base64 of `o=<offset>&r=<0|1>&p=<position>` (plus a subclass's own
    keys); anything else was not taken from a link (DRF itself would read `r=2` as reverse
    and ignore unknown keys)."""
    try:
        fields = parse.parse_qs(b64decode(raw.encode("ascii"), validate=True).decode("ascii"), keep_blank_values=True)
    except (ValueError, UnicodeError):
        return False
    if not fields or set(fields) - {"o", "r", "p"} - extra_keys or any(len(v) != 1 for v in fields.values()):
        return False
    return fields.get("r", ["0"])[0] in ("0", "1") and fields.get("o", ["0"])[0].isdigit()


class CursorPagination(pagination.CursorPagination):
    """Stable pages over large tables: the cursor is an opaque position on the ordering field.

    One rule everywhere: a `limit` outside 1–1,000 and a cursor that was not taken from a
    `next`/`previous` link are each a 400 problem (`invalid_limit`, `invalid_cursor`),
    never a silent default, a 404 or a 500 (a crafted position is checked against the
    ordering field's type before it reaches the database).
    """

    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "limit"
    max_page_size = MAX_PAGE_SIZE
    ordering = "-id"

    _position_field: Any = None
    # Keys a subclass adds to the cursor (memberships: the version it pages through).
    cursor_extra_keys: frozenset[str] = frozenset()

    def get_page_size(self, request: Request) -> int:
        return page_size_from(
            request.query_params.get(self.page_size_query_param), default=self.page_size, maximum=self.max_page_size
        )

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        ordering = self.get_ordering(request, queryset, view)
        field_name = ordering[0].lstrip("-") if ordering else ""
        try:
            self._position_field = queryset.model._meta.get_field(field_name) if field_name else None
        except (FieldDoesNotExist, AttributeError):
            self._position_field = None
        return super().paginate_queryset(queryset, request, view)

    def get_next_cursor(self) -> str | None:
        """The next page's cursor alone, for pages that build their own links (the portal)."""
        link = self.get_next_link()
        return parse.parse_qs(parse.urlsplit(link).query)[self.cursor_query_param][0] if link else None

    def decode_cursor(self, request: Request) -> Any:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is not None and not _well_formed(raw, self.cursor_extra_keys):
            raise InvalidCursor("The cursor could not be read.")
        try:
            cursor = super().decode_cursor(request)
        except _drf_exceptions.NotFound:  # DRF's answer to a cursor it cannot read
            raise InvalidCursor("The cursor could not be read.") from None
        if cursor is not None and cursor.position is not None and self._position_field is not None:
            try:
                self._position_field.to_python(cursor.position)
            except (ValidationError, ValueError, TypeError):
                raise InvalidCursor("The cursor names a position this list does not have.") from None
        return cursor


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
    errors = ProblemErrorSerializer(many=True, required=False)  # type: ignore[assignment]
    request_id = _serializers.CharField()


# The failure modes most endpoints share, in words an integrator can act on; an API module
# passes its own wording for the statuses where it says more (which codes, which fields).
COMMON_FAILURES: dict[int, str] = {
    400: "Malformed JSON (`malformed_json`), a body of the wrong shape (`invalid_request`), unknown fields "
    "(`unknown_fields`, with `allowed_fields`) or an unknown query parameter (`unknown_query_parameter`).",
    401: "No token, or an unknown, expired or revoked one (`not_authenticated`, `invalid_token`, `token_revoked`, "
    "`token_expired`).",
    403: "Your roles or your token's scopes do not allow this (`permission_denied`); the hint names the roles that "
    "do. The refusal is audited.",
    404: "No such object in your token's environment (`not_found`): objects of other environments are never shown.",
    405: "Method not allowed on this path (`method_not_allowed`).",
    409: "The request conflicts with the object's current state (`conflict`).",
    413: "The body is too large (`payload_too_large`); split the batch.",
    415: "The body is not `application/json` (`unsupported_media_type`).",
    422: "Some values are not valid (`invalid_input`): each entry of `errors` has a pointer, a code and a hint.",
    429: "Too many requests in the rate class (`rate_limited`; see Retry-After), or a quota is used up "
    "(`quota_exceeded`).",
    503: "A service the API depends on is not answering (`service_unavailable`; see Retry-After).",
}


PROBLEM_MEDIA_TYPE = "application/problem+json"


def problems_as_problem_json(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every 4xx and 5xx response is documented with the
    media type the API sends, `application/problem+json`, whichever helper described it."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for status, response in (operation.get("responses") or {}).items():
                content = response.get("content") if isinstance(response, dict) else None
                if str(status)[:1] in "45" and content and "application/json" in content:
                    content.setdefault(PROBLEM_MEDIA_TYPE, content.pop("application/json"))
    return result


def problem_responses(
    *statuses: int, failures: Mapping[int, str] | None = None, overrides: Mapping[int, str] | None = None
) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for an endpoint's failure statuses, each a problem body with a
    description: `failures` is the module's wording, `overrides` the endpoint's own. (The
    schema names their media type application/problem+json: problems_as_problem_json.)"""
    meanings = {**COMMON_FAILURES, **(failures or {}), **(overrides or {})}
    return {status: OpenApiResponse(ProblemSerializer, description=meanings[status]) for status in statuses}


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


class _MomentField(forms.Field):
    """A form field read by the one reader of dates (marketerapi/moments.py); a bad value is
    refused with its own problem (`not_a_date`, `bad_utc_offset`), naming the parameter."""

    def __init__(self, *args: Any, parameter: str = "", **kwargs: Any) -> None:
        self.parameter = parameter
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> Any:
        if value in self.empty_values:
            return None
        from marketerapi.moments import parse_moment

        return parse_moment(value, field=self.parameter or "date")


class MomentField(_serializers.DateTimeField):
    """A date-time in a request body (`occurred_at`, `captured_at`), read by the one reader of
    dates: an offset beyond ±15:59 is refused as `bad_utc_offset` (anything unreadable keeps
    DRF's code `invalid`) with the row's pointer, instead of reaching the database as a 500."""

    def to_internal_value(self, value: Any) -> Any:
        from marketerapi.moments import BadUtcOffset, NotADate, parse_moment

        try:
            moment = parse_moment(value, field=self.field_name or "date")
        except BadUtcOffset as error:
            raise _serializers.ValidationError(error.detail.split(": ", 1)[-1], code=error.code) from None
        except NotADate as error:
            # DRF's own code for a bad date-time (`invalid`), which ingestion has always answered.
            raise _serializers.ValidationError(error.detail.split(": ", 1)[-1], code="invalid") from None
        return super().to_internal_value(moment)


class MomentFilter(_filters.IsoDateTimeFilter):
    """An ISO 8601 date or date-time query parameter (`?updated_since=`, `?since=`): what
    every list filters dates with, instead of django-filter's IsoDateTimeFilter (which lets
    offsets beyond ±15:59 through to the database, a 500). Use it in a StrictFilterSet,
    which tells each one its parameter's name."""

    field_class = _MomentField


class StrictFilterSet(_filters.FilterSet):
    """A FilterSet that refuses unknown query parameters instead of ignoring them,
    so a typo (`?regoin=EU`) never silently returns everything."""

    # Parameters read by pagination and rendering rather than by the filters.
    extra_parameters: frozenset[str] = frozenset({"cursor", "limit", "format"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, item in self.filters.items():
            if isinstance(item, MomentFilter):
                item.extra["parameter"] = name  # read by its form field, built on first use

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
    """OpenAPI security scheme for governance.access.auth.BearerTokenAuthentication."""

    target_class = "governance.access.auth.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mk_<environment>_<secret>",
            "description": "An API token; its environment (sandbox, pilot, production, …) scopes every object.",
        }


class PortalSessionScheme(OpenApiAuthenticationExtension):
    """OpenAPI security scheme for governance.access.auth.PortalSessionAuthentication."""

    target_class = "governance.access.auth.PortalSessionAuthentication"
    name = "portalSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
