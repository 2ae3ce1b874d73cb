"""The suppression lists API: list them, create a named list, add and remove people.

Thin like every door: a strict serializer checks the shape, the entries are read by
audiences/suppressions/entries.py (every bad row at once), one service writes. A change of
the global list in pilot or production answers 202 with the approval request.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import generics, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from audiences.api.definitions import ApprovalFiledSerializer, validated
from audiences.api.profiles import PolicyAllows
from audiences.models import SuppressionList
from audiences.suppressions import selectors, services
from audiences.suppressions.entries import parse_entries
from governance.approvals import approval_brief
from governance.limits.idempotency import idempotent
from marketerapi.api import ActorMixin, StrictFilterSet, StrictSerializer, problem_responses
from marketerapi.problems import InvalidInput

_FAILURES = {
    404: "No such list (`suppression_list_not_found`).",
    409: "A list of that name exists (`suppression_list_exists`), or a change of the global list waits for "
    "approval already (`approval_pending`).",
    422: "Bad entries (`invalid_rows`, each with pointer and hint) or bad values (`invalid_input`).",
}


class SuppressionListSerializer(serializers.ModelSerializer):
    entries = serializers.IntegerField(source="entry_count", read_only=True, help_text="How many people it lists.")
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = SuppressionList
        fields: ClassVar[list[str]] = ["id", "name", "is_global", "description", "entries", "created_by", "created_at"]


class EntryInputSerializer(serializers.Serializer):
    external_id = serializers.CharField(required=False)
    email = serializers.CharField(required=False, help_text="Hashed (SHA-256 of the lower-cased address) on arrival.")
    email_hash = serializers.CharField(required=False, help_text="Hex SHA-256 of the lower-cased address.")


class SuppressionRequestSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=100, help_text="Create a named list of this name…")
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    list = serializers.CharField(required=False, max_length=100, help_text='…or change a list: "global" or a name.')
    entries = serializers.JSONField(required=False, help_text="People to add (up to 10,000).")
    remove = serializers.JSONField(required=False, help_text="People to take off the list (up to 10,000).")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)


@extend_schema_field(EntryInputSerializer(many=True))
class _EntriesDoc(serializers.JSONField):
    pass


class SuppressionRequestDocSerializer(SuppressionRequestSerializer):
    """SuppressionRequestSerializer as the schema shows it (entries as objects)."""

    entries = _EntriesDoc(required=False, help_text="People to add (up to 10,000).")
    remove = _EntriesDoc(required=False, help_text="People to take off the list (up to 10,000).")


class SuppressionChangeSerializer(serializers.Serializer):
    list = SuppressionListSerializer()
    added = serializers.IntegerField()
    already_listed = serializers.IntegerField()
    removed = serializers.IntegerField()
    not_listed = serializers.IntegerField()


class SuppressionFilter(StrictFilterSet):
    name = filters.CharFilter(help_text="Exactly this name.")
    is_global = filters.BooleanFilter()

    class Meta:
        model = SuppressionList
        fields: ClassVar[list[str]] = []


class SuppressionLists(ActorMixin, generics.ListAPIView):
    serializer_class = SuppressionListSerializer
    filterset_class = SuppressionFilter
    permission_classes = [permissions.IsAuthenticated, PolicyAllows]
    policy_actions: ClassVar[dict[str, str]] = {"POST": "suppression.change"}
    # Up to 10,000 entries a request: the bulk class (20 a minute per token); listing reads.
    rate_class: ClassVar[dict[str, str]] = {"POST": "bulk"}

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return SuppressionList.objects.none()
        return selectors.suppression_lists(actor=self.actor)

    @extend_schema(
        operation_id="suppressions_list",
        summary="List suppression lists",
        description=(
            "The suppression lists of your token's environment with how many people each lists, cursor-paginated. "
            "Every list applies to every audience of the environment (preview, publish, send).\n\n"
            "**Permission:** any role (`suppression.view`)."
        ),
        responses={200: SuppressionListSerializer(many=True), **problem_responses(400, 401, 403, failures=_FAILURES)},
        examples=[
            OpenApiExample(
                "Lists",
                response_only=True,
                value={
                    "id": 3,
                    "name": "global",
                    "is_global": True,
                    "description": "People never to contact in this environment",
                    "entries": 1204,
                    "created_by": "ann",
                    "created_at": "2026-03-04T17:05:03Z",
                },
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        operation_id="suppressions_change",
        summary="Create a suppression list, or add and remove people",
        description=(
            '- `{"name": "complaints", "description": …, "entries": [...]}` creates a **named list** (201), '
            "optionally with its first entries.\n"
            '- `{"list": "global" | "<name>", "entries": [...], "remove": [...], "reason": …}` adds and removes '
            "people (200 with the counts). Adding someone listed already counts `already_listed`; removing someone "
            "not listed counts `not_listed`.\n\n"
            'An entry is `{"external_id": …}`, `{"email": …}` or `{"email_hash": …}`. Emails are stored only as '
            "the SHA-256 of the lower-cased address; the address itself is never stored. Bad entries are a 422 "
            "`invalid_rows` listing each (`/entries/3/email`); nothing is applied then. Up to 10,000 entries per "
            "request.\n\n"
            "Rate class `bulk`. Changing the **global** list in pilot and production needs two approvals "
            "(an approver and a developer "
            "or admin): the answer is **202** with the approval request and nothing changes until it is approved.\n\n"
            "**Permission:** campaign_operator, developer or admin (`suppression.change`; the global list "
            "`suppression.change_global`). Audited (`suppression.create`, `suppression.change`, "
            "`suppression.change_global`)."
        ),
        request=SuppressionRequestDocSerializer,
        responses={
            200: SuppressionChangeSerializer,
            201: SuppressionChangeSerializer,
            202: ApprovalFiledSerializer,
            **problem_responses(400, 401, 403, 404, 409, 422, failures=_FAILURES),
        },
        examples=[
            OpenApiExample(
                "Add to the global list",
                request_only=True,
                value={
                    "list": "global",
                    "entries": [{"external_id": "cust-000123"}, {"email": "Ann@Example.com"}],
                    "reason": "complaint",
                },
            ),
            OpenApiExample("Create a named list", request_only=True, value={"name": "complaints", "entries": []}),
            OpenApiExample(
                "Changed",
                response_only=True,
                value={
                    "list": {
                        "id": 3,
                        "name": "global",
                        "is_global": True,
                        "description": "People never to contact in this environment",
                        "entries": 2,
                        "created_by": "ann",
                        "created_at": "2026-03-04T17:05:03Z",
                    },
                    "added": 2,
                    "already_listed": 0,
                    "removed": 0,
                    "not_listed": 0,
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = validated(SuppressionRequestSerializer, request.data)
        if ("name" in data) == ("list" in data):
            raise InvalidInput(
                "Send either `name` (to create a list) or `list` (to change one).",
                errors=[
                    {
                        "pointer": "/list",
                        "code": "name_or_list",
                        "message": "Exactly one of name and list is needed.",
                        "hint": '{"name": "complaints"} creates a list; '
                        '{"list": "global", "entries": [...]} adds to one.',
                    }
                ],
            )
        entries = parse_entries(data.get("entries", []), key="entries")
        remove = parse_entries(data.get("remove", []), key="remove")
        reason = data.get("reason", "")
        if "name" in data:
            if remove:
                raise InvalidInput(
                    "A new list has nothing to remove.",
                    errors=[
                        {
                            "pointer": "/remove",
                            "code": "nothing_to_remove",
                            "message": "A new list is empty.",
                            "hint": "Leave out remove.",
                        }
                    ],
                )
            created = services.suppression_list_create(
                actor=self.actor,
                name=data["name"],
                description=data.get("description", ""),
                entries=entries,
                reason=reason,
            )
            return Response(_changed(created), status=status.HTTP_201_CREATED)
        if not entries and not remove:
            raise InvalidInput(
                "Nothing to change: send entries to add or remove.",
                errors=[
                    {
                        "pointer": "/entries",
                        "code": "nothing_to_change",
                        "message": "No entries.",
                        "hint": 'Send "entries": [{"external_id": "cust-1"}] or "remove": [...].',
                    }
                ],
            )
        outcome = services.suppression_entries_change(
            actor=self.actor, list_name=data["list"], add=entries, remove=remove, reason=reason
        )
        if outcome.approval is not None:
            return Response(approval_brief(outcome.approval), status=status.HTTP_202_ACCEPTED)
        assert outcome.result is not None
        return Response(_changed(outcome.result), status=status.HTTP_200_OK)


def _changed(change: services.SuppressionChange) -> dict[str, Any]:
    return {"list": SuppressionListSerializer(change.suppression_list).data, **change.counts()}
