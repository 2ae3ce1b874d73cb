"""The flags API: which capabilities are on for the caller, and (admins) changing a flag.

`GET /flags/`, `GET /flags/{name}`, `PATCH /flags/{name}`. Reading is open to anyone
signed in; reads go through governance/flags/selectors.py and a change through
governance.flags.services.flag_set (audited, emits `flag.changed`; switching off a
personalization flag answers 202 with an approval request). See docs/flags.md.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.urls import re_path
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.approvals import approval_brief
from governance.flags.rollout import group_ids_of
from governance.flags.selectors import flag_as_dict, flag_get, flag_list
from governance.flags.services import KEEP, flag_set
from marketerapi.api import ActorMixin, problem_responses


class RolloutSerializer(serializers.Serializer):
    everyone = serializers.BooleanField(
        allow_null=True, help_text="true: on for all; false: off for all; null: groups, users and percent decide."
    )
    percent = serializers.FloatField(allow_null=True, help_text="The share of people (0–99.9) who have it.")
    groups = serializers.ListField(child=serializers.CharField(), help_text="Pilot groups that have it.")
    users = serializers.IntegerField(help_text="How many people have it by name.")


class FlagSerializer(serializers.Serializer):
    name = serializers.CharField()
    active = serializers.BooleanField(help_text="Whether the flag is on for you.")
    reason = serializers.CharField(help_text="Why, e.g. `on for a group you are in (pilot group)`.")
    description = serializers.CharField(allow_blank=True)
    owner = serializers.CharField(allow_blank=True, help_text="The team or person who answers for the flag.")
    affects_personalization = serializers.BooleanField(
        help_text="Switching it off changes what customers see; in pilot and production that needs two approvals."
    )
    on_in_sandbox = serializers.BooleanField(
        help_text="On for everyone in sandbox environments (the product's capability flags)."
    )
    rollout = RolloutSerializer()
    modified = serializers.DateTimeField(allow_null=True)


class FlagChangeSerializer(serializers.Serializer):
    """Send only what you change; a field you leave out keeps its value."""

    everyone = serializers.BooleanField(required=False, allow_null=True)
    percent = serializers.DecimalField(
        required=False, allow_null=True, max_digits=3, decimal_places=1, min_value=Decimal(0), max_value=Decimal("99.9")
    )
    groups = serializers.ListField(child=serializers.CharField(), required=False, help_text="Replaces the list.")
    users = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Usernames; replaces the list."
    )

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown field. Allowed: {', '.join(self.fields)}."] for name in unknown}
                )
            if not data:
                raise serializers.ValidationError({"non_field_errors": ["Send at least one field to change."]})
        return super().to_internal_value(data)


class FlagChangeResponseSerializer(serializers.Serializer):
    flag = FlagSerializer()
    changed = serializers.BooleanField()
    notes = serializers.ListField(child=serializers.CharField())


_FAILURES = {
    400: "Unknown fields or an empty body (`invalid_request`).",
    401: "No or a bad token (`not_authenticated`).",
    403: "Not an admin or no `admin` scope (`permission_denied`), or a personalization switch-off from an "
    "environment without approvals (`personalization_flag_needs_approval`). Audited.",
    404: "No such flag (`flag_not_found`).",
    409: "A switch-off of this flag already waits for approval (`approval_pending`, with `approval_url`).",
    422: "Unknown group or user names, or a percentage out of range (`invalid_input`).",
}


def _problems(*statuses: int) -> dict[int, OpenApiResponse]:
    return problem_responses(*statuses, failures=_FAILURES)


FLAG_EXAMPLE = {
    "name": "next_best_offer",
    "active": True,
    "reason": "on for a group you are in (pilot group)",
    "description": "Personalised offers in campaign emails, chosen by the offer model.",
    "owner": "growth",
    "affects_personalization": True,
    "rollout": {"everyone": None, "percent": 10.0, "groups": ["pilot-testers"], "users": 0},
    "modified": "2026-03-02T10:15:00Z",
}


class FlagList(ActorMixin, APIView):
    @extend_schema(
        operation_id="flags_list",
        summary="List feature flags",
        description=(
            "Every flag, with whether it is on for you and why, what it is for, who owns it, whether it affects "
            "personalization, and its rollout (everyone / pilot groups / percentage). The percentage is stable "
            "per person and flag: who is in stays in as it grows.\n\n"
            "**Permission:** anyone signed in (`flag.view`)."
        ),
        responses={
            200: inline_serializer("FlagListResponse", fields={"results": FlagSerializer(many=True)}),
            **_problems(401),
        },
        examples=[OpenApiExample("Flags", response_only=True, value={"results": [FLAG_EXAMPLE]})],
    )
    def get(self, request: Request) -> Response:
        return Response({"results": flag_list(actor=self.actor)})


class FlagDetail(ActorMixin, APIView):
    policy_actions = {"PATCH": "flag.change"}

    @extend_schema(
        operation_id="flags_retrieve",
        summary="Show one feature flag",
        description="One flag as in the list.\n\n**Permission:** anyone signed in (`flag.view`).",
        responses={200: FlagSerializer, **_problems(404)},
        examples=[OpenApiExample("A flag", response_only=True, value=FLAG_EXAMPLE)],
    )
    def get(self, request: Request, name: str) -> Response:
        user = self.actor.user
        flag = flag_get(actor=self.actor, name=name)
        return Response(
            flag_as_dict(
                flag, user, group_ids_of(user) if user is not None else None, sandbox=self.actor.environment.is_sandbox
            )
        )

    @extend_schema(
        operation_id="flags_partial_update",
        summary="Change who has a flag",
        description=(
            "Progressive exposure: a pilot group (`groups`), then a percentage (`percent`), then everyone "
            "(`everyone: true`). Send only the fields you change; `groups` and `users` replace their lists; "
            "`everyone: null` lets groups, users and the percentage decide.\n\n"
            "Flags are global: the change applies in every environment, is audited in your token's environment "
            "with before/after, and is announced as `flag.changed` in every environment.\n\n"
            "Switching **off** a flag marked `affects_personalization` (everyone → false, or narrowing who has "
            "it) answers **202** with an approval request in pilot and production (an approver and an admin); "
            "it is applied when approved. From the sandbox, or an environment without that policy, it is refused "
            "(403 `personalization_flag_needs_approval`): make the change from production.\n\n"
            "**Permission:** admin (`flag.change`); a token needs the `admin` scope."
        ),
        request=FlagChangeSerializer,
        responses={
            200: FlagChangeResponseSerializer,
            202: OpenApiResponse(
                description='An approval request was filed: `{"approval": {id, state, required, received, …}}`.'
            ),
            **_problems(400, 403, 404, 409, 422),
        },
        examples=[
            OpenApiExample("A pilot group", request_only=True, value={"groups": ["pilot-testers"]}),
            OpenApiExample("10 % of people", request_only=True, value={"everyone": None, "percent": 10}),
            OpenApiExample("Everyone", request_only=True, value={"everyone": True}),
            OpenApiExample(
                "Switch-off filed for approval",
                response_only=True,
                status_codes=["202"],
                value={
                    "approval": {
                        "id": 42,
                        "state": "pending",
                        "required": 2,
                        "received": 0,
                        "summary": "Switch off the personalization flag 'next_best_offer' (everyone True → False)",
                        "expires_at": "2026-03-05T10:15:00Z",
                        "url": "/api/v1/approvals/42",
                    },
                    "detail": "In production, switching off a flag that affects personalization needs 2 approval(s).",
                    "hint": "It runs once an approver and an admin approve it, within 72 hours; follow it at the url.",
                },
            ),
        ],
    )
    def patch(self, request: Request, name: str) -> Response:
        body = FlagChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        outcome = flag_set(
            actor=self.actor,
            flag_name=name,
            everyone=data.get("everyone", KEEP),
            percent=data.get("percent", KEEP),
            groups=data.get("groups", KEEP),
            users=data.get("users", KEEP),
        )
        if outcome.approval is not None:
            return Response(approval_brief(outcome.approval), status=status.HTTP_202_ACCEPTED)
        assert outcome.result is not None  # ran now
        user = self.actor.user
        flag = flag_get(actor=self.actor, name=name)
        return Response(
            {
                "flag": flag_as_dict(
                    flag,
                    user,
                    group_ids_of(user) if user is not None else None,
                    sandbox=self.actor.environment.is_sandbox,
                ),
                "changed": outcome.result.changed,
                "notes": outcome.result.notes,
            }
        )


urlpatterns = [
    re_path(r"^flags/?$", FlagList.as_view(), name="flag-list"),
    re_path(r"^flags/(?P<name>[\w.:-]+)/?$", FlagDetail.as_view(), name="flag-detail"),
]
