"""Tokens API: list, issue (the secret is shown once) and revoke API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from django.urls import re_path
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.access import selectors, services
from governance.models import ApiToken
from marketerapi.api import ActorMixin


class TokenSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    owner = serializers.CharField(source="owner.username", allow_null=True, default=None)
    environment = serializers.CharField(source="environment.slug")
    state = serializers.SerializerMethodField()
    service_account = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "environment",
            "user",
            "owner",
            "service_account",
            "scopes",
            "rate_limits",
            "state",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]

    def get_state(self, token: ApiToken) -> str:
        return "revoked" if token.is_revoked else "expired" if token.is_expired else "active"

    def get_service_account(self, token: ApiToken) -> bool:
        return token.owner_id is not None and token.owner_id != token.user_id


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.CharField(), required=False)
    expires_in_days = serializers.IntegerField(min_value=1, max_value=services.MAX_TOKEN_DAYS, required=False)
    service_account = serializers.CharField(required=False, help_text="Username of a service account you own.")
    rate_limits = serializers.DictField(child=serializers.IntegerField(min_value=1), required=False)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown field. Allowed: {', '.join(self.fields)}."] for name in unknown}
                )
        return super().to_internal_value(data)


EXAMPLE_TOKEN = {
    "id": 7,
    "name": "crm-sync",
    "prefix": "mk_sandbox_Q2x9aB",
    "environment": "sandbox",
    "user": "demo-developer",
    "owner": "demo-developer",
    "service_account": False,
    "scopes": ["read", "ingest"],
    "rate_limits": {},
    "state": "active",
    "created_at": "2026-11-28T10:00:00Z",
    "expires_at": "2027-02-26T10:00:00Z",
    "last_used_at": None,
    "revoked_at": None,
}


class TokenListView(ActorMixin, APIView):
    @extend_schema(
        summary="List API tokens",
        description="Tokens of this environment that you answer for (yours and your service accounts'); "
        "admins see all. Secrets are never shown again. Needs the developer or admin role.",
        responses=inline_serializer("TokenList", fields={"results": TokenSerializer(many=True)}),
        examples=[OpenApiExample("A token", value={"results": [EXAMPLE_TOKEN]}, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        tokens = selectors.token_list(actor=self.actor)
        return Response({"results": TokenSerializer(tokens, many=True).data})

    @extend_schema(
        summary="Issue an API token",
        description="Issues a token bound to this environment (`mk_<environment>_…`). The secret is in the "
        "response **once**; store it now. Scopes narrow what the owner's roles allow (read, write, publish, "
        "export, ingest, admin); a scope none of the owner's roles can use is refused (422 "
        "`scope_exceeds_roles`). Default expiry 90 days, at most 365. Pass `service_account` to issue a "
        "token for a service account you own. Needs the developer or admin role and, through a token, the "
        "`admin` scope. Failure modes: 400 unknown fields, 403 role, 422 unknown scope.",
        request=TokenCreateSerializer,
        responses={201: TokenSerializer},
        examples=[
            OpenApiExample("Request", value={"name": "crm-sync", "scopes": ["read", "ingest"]}, request_only=True),
            OpenApiExample("Response", value={**EXAMPLE_TOKEN, "token": "mk_sandbox_Q2x9aB…"}, response_only=True),
        ],
    )
    def post(self, request: Request) -> Response:
        actor = self.actor
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = (
            selectors.service_account_user_get(username=data["service_account"])
            if "service_account" in data
            else actor.user
        )
        if user is None:  # an actor from a request is a person, never the system
            raise NotAuthenticated()
        days = data.get("expires_in_days")
        issued = services.token_issue(
            actor=actor,
            user=user,
            name=data["name"],
            scopes=data.get("scopes"),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
            rate_limits=data.get("rate_limits"),
        )
        body = {
            **TokenSerializer(issued.token).data,
            "token": issued.secret,
            "warning": "This is the only time the token is shown. Store it in your secret manager now.",
        }
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailView(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"DELETE": "token.revoke"}

    @extend_schema(summary="Show one API token", responses=TokenSerializer)
    def get(self, request: Request, token_id: int) -> Response:
        token = selectors.token_get(actor=self.actor, token_id=token_id)
        return Response(TokenSerializer(token).data)

    @extend_schema(
        summary="Revoke an API token",
        description="Revokes the token at once; calls with it then get 401 `token_revoked`. The owner or an "
        "admin may revoke. 404 for tokens you do not answer for, 409 when already revoked.",
        responses={204: None},
    )
    def delete(self, request: Request, token_id: int) -> Response:
        actor = self.actor
        token = selectors.token_get(actor=actor, token_id=token_id)
        services.token_revoke(actor=actor, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    re_path(r"^tokens/?$", TokenListView.as_view(), name="token-list"),
    re_path(r"^tokens/(?P<token_id>[0-9]+)/?$", TokenDetailView.as_view(), name="token-detail"),
]
