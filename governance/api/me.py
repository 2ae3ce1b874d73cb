"""Me API: who the caller is and what is in force for them — roles, teams, environment,
token, enabled flags, rate limits (`GET /me`) and quotas with their use (`GET /me/quotas`).

Both answer in a fixed number of queries, however many flags, teams or quotas there are.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.urls import re_path
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.actors import Actor
from governance.flags.selectors import flags_for
from governance.limits.ratelimit import RATE_CLASSES
from governance.limits.selectors import quota_statuses
from governance.limits.throttling import limits_of
from governance.roles import ROLE_NAMES
from marketerapi.api import ActorMixin, problem_responses


class MeUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    name = serializers.CharField(help_text="First and last name; empty when not set.")


class MeEnvironmentSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    data_kind = serializers.ChoiceField(["synthetic", "constrained", "real"])


class MeTokenSerializer(serializers.Serializer):
    prefix = serializers.CharField(help_text="The first characters of the secret, to recognise it.")
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)


class MeFlagSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()


class RateLimitSerializer(serializers.Serializer):
    limit = serializers.IntegerField(help_text="Accepted requests in any `window` seconds.")
    window = serializers.IntegerField()
    source = serializers.CharField(  # type: ignore[assignment]  # a field named like a Field attribute
        help_text='Where the number comes from: "default", "role:<role>" or "token".'
    )


class MeSerializer(serializers.Serializer):
    user = MeUserSerializer()
    roles = serializers.ListField(child=serializers.ChoiceField(list(ROLE_NAMES)))
    teams = serializers.ListField(child=serializers.CharField(), help_text="The teams (groups) you belong to.")
    environment = MeEnvironmentSerializer()
    token = MeTokenSerializer(allow_null=True, help_text="The token of this call; null for a portal session.")
    flags = MeFlagSerializer(many=True, help_text="The feature flags enabled for you.")
    rate_limits = inline_serializer(
        "MeRateLimits", fields={name: RateLimitSerializer() for name in RATE_CLASSES}, help_text="Per rate class."
    )


class QuotaSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    limit = serializers.IntegerField()
    used = serializers.IntegerField()
    remaining = serializers.IntegerField()
    period = serializers.ChoiceField(["day", "month"], help_text="UTC day or calendar month.")
    resets_at = serializers.DateTimeField(help_text="When the period ends and `used` starts again at 0.")
    percent = serializers.FloatField(help_text="used / limit × 100, one decimal.")
    warning = serializers.BooleanField(help_text="True at or past 80 %: the portal warns.")


def _person(actor: Actor) -> User:
    # actor_from_request refuses requests without a person: the caller is a user.
    assert actor.user is not None
    return actor.user


def _user(actor: Actor) -> dict[str, Any]:
    user = _person(actor)
    return {"id": user.pk, "username": user.get_username(), "email": user.email, "name": user.get_full_name()}


def _teams(actor: Actor) -> list[str]:
    user = _person(actor)
    groups = list(user.groups.values_list("pk", "name"))
    # One query for both: flags_for reads the user's group ids from this attribute
    # (governance.flags.rollout.group_ids_of) instead of asking again.
    user._marketerapi_group_ids = {pk for pk, _ in groups}  # type: ignore[attr-defined]  # group_ids_of's cache
    return sorted(name for _, name in groups if name not in ROLE_NAMES)


def _token(actor: Actor) -> dict[str, Any] | None:
    token = actor.token
    if token is None:
        return None
    return {
        "prefix": token.prefix,
        "scopes": list(token.scopes),
        "expires_at": serializers.DateTimeField().to_representation(token.expires_at) if token.expires_at else None,
    }


EXAMPLE_ME = {
    "user": {"id": 12, "username": "dana", "email": "dana@example.com", "name": "Dana Kim"},
    "roles": ["developer"],
    "teams": ["growth"],
    "environment": {"slug": "sandbox", "name": "Sandbox", "data_kind": "synthetic"},
    "token": {"prefix": "mk_sandbox_Q2x9aB", "scopes": ["read", "ingest"], "expires_at": "2027-02-26T10:00:00Z"},
    "flags": [{"name": "new_preview", "description": "The reach waterfall in previews."}],
    "rate_limits": {
        "read": {"limit": 1200, "window": 60, "source": "role:developer"},
        "write": {"limit": 120, "window": 60, "source": "default"},
        "preview": {"limit": 60, "window": 60, "source": "default"},
        "bulk": {"limit": 5, "window": 60, "source": "token"},
    },
}

EXAMPLE_QUOTAS = {
    "results": [
        {
            "name": "export-masked",
            "description": "Masked exports per user",
            "limit": 50,
            "used": 41,
            "remaining": 9,
            "period": "month",
            "resets_at": "2026-12-01T00:00:00Z",
            "percent": 82.0,
            "warning": True,
        }
    ]
}

UNAUTHENTICATED = problem_responses(
    401, overrides={401: "No token or session, or an unknown, expired or revoked token."}
)


class MeView(ActorMixin, APIView):
    @extend_schema(
        operation_id="me",
        summary="Who am I",
        description="Your user, roles, teams, the environment of this call, the token used (null for a portal "
        "session) with its scopes and expiry, the feature flags enabled for you, and the rate limits in force "
        "for you per rate class (requests per 60 s, after role multipliers and the token's own limits; "
        "docs/limits.md). Any signed-in caller; no scope needed.",
        responses={200: MeSerializer, **UNAUTHENTICATED},
        examples=[OpenApiExample("A developer's token", value=EXAMPLE_ME, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        actor = self.actor
        environment = actor.environment
        body = {
            "user": _user(actor),
            "roles": list(actor.roles),
            "teams": _teams(actor),
            "environment": {"slug": environment.slug, "name": environment.name, "data_kind": environment.data_kind},
            "token": _token(actor),
            "flags": [
                {"name": flag["name"], "description": flag["description"]}
                for flag in flags_for(actor)
                if flag["active"]
            ],
            "rate_limits": {name: limit.as_dict() for name, limit in limits_of(request).items()},
        }
        return Response(body)


class MeQuotasView(ActorMixin, APIView):
    @extend_schema(
        operation_id="me_quotas",
        summary="My quotas",
        description="Each quota that applies to you (exports per month, publishes per day, …): its limit, how "
        "much you used this period, what remains, the period (UTC day or calendar month), when it resets and "
        "the percentage used; `warning` is true at 80 % or more. Use is counted per user across the portal "
        "and your tokens, unless a token has a quota of its own. An action past its quota is refused with 429 "
        "`quota_exceeded`, whose hint names the reset time. Any signed-in caller.",
        responses={
            200: inline_serializer("MeQuotas", fields={"results": QuotaSerializer(many=True)}),
            **UNAUTHENTICATED,
        },
        examples=[OpenApiExample("Past 80 %", value=EXAMPLE_QUOTAS, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        actor = self.actor
        return Response({"results": [status.as_dict() for status in quota_statuses(actor)]})


urlpatterns = [
    re_path(r"^me/?$", MeView.as_view(), name="me"),
    re_path(r"^me/quotas/?$", MeQuotasView.as_view(), name="me-quotas"),
]
