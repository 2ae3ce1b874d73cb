"""The approvals API: list and read approval requests, approve, reject, cancel.

`GET /approvals/`, `GET /approvals/{id}`, `POST /approvals/{id}/approve`, `/reject`,
`/cancel`. Everyone in the token's environment may read its requests; who may vote is
decided by the request's policy steps (docs/approvals.md). Requests of another
environment answer 404.
"""

from __future__ import annotations

from typing import Any

from django.urls import re_path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.actors import Actor
from governance.approvals import selectors, services
from governance.models import ApprovalRequest, ApprovalState, VoteDecision
from marketerapi.api import ActorMixin, CursorPagination, UnknownQueryParameters, problem_responses
from marketerapi.problems import InvalidInput

# --- serializers ------------------------------------------------------------------------


class TargetSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="app_label.model, e.g. audiences.audience or waffle.flag.")
    id = serializers.CharField()
    label = serializers.CharField(  # type: ignore[assignment]  # a field named like a Field attribute
        help_text="What the target was called when the request was filed."
    )


class VoteSerializer(serializers.Serializer):
    voter = serializers.CharField()
    decision = serializers.ChoiceField(VoteDecision.choices)
    role = serializers.CharField(help_text="The role the vote counts for (the step it fills).")
    comment = serializers.CharField(allow_blank=True)
    counts = serializers.BooleanField(help_text="False once the target changed under the request (stale).")
    created_at = serializers.DateTimeField()


class StepSerializer(serializers.Serializer):
    roles = serializers.ListField(child=serializers.CharField(), help_text="Any one of these roles fills the step.")
    filled_by = serializers.CharField(allow_null=True, help_text="Who filled it, or null while it is open.")


class YouSerializer(serializers.Serializer):
    may_vote = serializers.BooleanField()
    may_cancel = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True, help_text="Why you may not vote, when you may not.")


class ApprovalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    environment = serializers.CharField()
    action = serializers.CharField(help_text="The policy action that waits, e.g. audience.publish.")
    state = serializers.ChoiceField(ApprovalState.choices)
    summary = serializers.CharField(help_text="The request in business terms; says when it is scheduled.")
    target = TargetSerializer()
    requester = serializers.CharField()
    required = serializers.IntegerField(  # type: ignore[assignment]  # a field named like a Field attribute
        help_text="Approvals needed, one per policy step."
    )
    received = serializers.IntegerField(help_text="Approvals that count so far.")
    is_stale = serializers.BooleanField(help_text="The target changed after the request was filed.")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    scheduled_for = serializers.DateTimeField(
        allow_null=True, help_text="When an approved publish or activation runs: the next change window."
    )
    executed_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance: ApprovalRequest) -> dict[str, Any]:
        return approval_as_dict(instance)


class ChangedFieldSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="e.g. rules, channel, name.")
    requested = serializers.JSONField(help_text="As the request shows it.")
    now = serializers.JSONField(help_text="As it is now.")


class ApprovalDetailSerializer(ApprovalSerializer):
    change = serializers.DictField(help_text="What will be done, as filed.")
    policy = serializers.DictField(help_text="A snapshot of the policy that asked for approval.")
    steps = StepSerializer(many=True)
    votes = VoteSerializer(many=True)
    stale_reason = serializers.CharField(allow_null=True)
    changes = ChangedFieldSerializer(
        many=True,
        help_text="A stale request: what changed in the target since it was filed (as requested, and now). "
        "A stale request cannot be approved (409 `approval_stale`); requesting again replaces it.",
    )
    result = serializers.DictField(
        help_text="The action's result, or `error` with `code`, `message` and `hint`; a request replaced by a "
        "newer one has `superseded_by`."
    )
    you = YouSerializer()

    def to_representation(self, instance: ApprovalRequest) -> dict[str, Any]:
        return approval_detail(instance, self.context["actor"])


class DecisionResponseSerializer(serializers.Serializer):
    approval = ApprovalDetailSerializer()
    message = serializers.CharField(help_text="What your vote did, e.g. what is still needed or when it runs.")
    notices = serializers.ListField(child=serializers.CharField(), help_text="E.g. that the request became stale.")


class CommentSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field. Allowed: comment."] for name in unknown})
        return super().to_internal_value(data)


def approval_as_dict(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": request.pk,
        "environment": request.environment.slug,
        "action": request.action,
        "state": request.state,
        "summary": request.summary,
        "target": {"type": request.target_type, "id": request.target_id, "label": request.target_label},
        "requester": request.requester.get_username(),
        "required": request.required,
        "received": selectors.received_of(request),
        "is_stale": request.is_stale,
        "created_at": request.created_at,
        "expires_at": request.expires_at,
        "decided_at": request.decided_at,
        "scheduled_for": request.scheduled_for,
        "executed_at": request.executed_at,
    }


def approval_detail(request: ApprovalRequest, actor: Actor) -> dict[str, Any]:
    standing = selectors.approval_standing(request=request, actor=actor)
    body = approval_as_dict(request)
    body.update(
        {
            "is_stale": standing.is_stale,
            "change": request.change,
            "policy": request.policy,
            "steps": [
                {
                    "roles": step.roles,
                    "filled_by": step.filled_by.voter.get_username() if step.filled_by is not None else None,
                }
                for step in standing.steps
            ],
            "votes": [
                {
                    "voter": v.voter.get_username(),
                    "decision": v.decision,
                    "role": v.role,
                    "comment": v.comment,
                    "counts": v.counts,
                    "created_at": v.created_at,
                }
                for v in standing.votes
            ],
            "stale_reason": standing.stale_reason,
            "changes": standing.changes,
            "result": request.result,
            "you": {
                "may_vote": standing.may_vote,
                "may_cancel": standing.may_cancel,
                "reason": "" if standing.refusal is None else standing.refusal.detail,
            },
        }
    )
    return body


# --- documentation pieces -----------------------------------------------------------------


_FAILURES = {
    400: "An unknown query parameter (`unknown_query_parameter`) or a bad cursor (`invalid_cursor`).",
    401: "No token, or an unknown, expired or revoked one (`not_authenticated`, `invalid_token`).",
    403: "You filed the request (`self_approval`), your roles fill no open step (`not_eligible`, e.g. a compliance "
    "reviewer on a non-export action), or your token lacks the `write` scope (`permission_denied`). Refusals "
    "are audited.",
    404: "No such request in your token's environment (`approval_not_found`); other environments' requests are "
    "never shown.",
    409: "The request is no longer pending (`approval_closed`), it expired (`approval_expired`), you already "
    "voted (`already_voted`), or its target changed after it was filed (`approval_stale`, with `changes`: the "
    "requester must request it again).",
    422: "A filter value that is not valid (`invalid_filter`), e.g. an unknown state.",
}


def _problems(*statuses: int, overrides: dict[int, str] | None = None) -> dict[int, OpenApiResponse]:
    return problem_responses(*statuses, failures=_FAILURES, overrides=overrides)


EXAMPLE = {
    "id": 41,
    "environment": "production",
    "action": "audience.archive",
    "state": "pending",
    "summary": "Archive the published audience 'Spring sale EU' (reach 61,204)",
    "target": {"type": "audiences.audience", "id": "17", "label": "Spring sale EU"},
    "requester": "ann",
    "required": 2,
    "received": 1,
    "is_stale": False,
    "created_at": "2026-03-02T10:15:00Z",
    "expires_at": "2026-03-05T10:15:00Z",
    "decided_at": None,
    "scheduled_for": None,
    "executed_at": None,
}
DETAIL_EXAMPLE = {
    **EXAMPLE,
    "change": {"context": {}},
    "policy": {
        "id": 12,
        "action": "audience.archive",
        "steps": [["approver"], ["developer", "admin"]],
        "description": "Deleting or archiving a published audience",
    },
    "steps": [
        {"roles": ["approver"], "filled_by": "bob"},
        {"roles": ["developer", "admin"], "filled_by": None},
    ],
    "votes": [
        {
            "voter": "bob",
            "decision": "approve",
            "role": "approver",
            "comment": "",
            "counts": True,
            "created_at": "2026-03-02T11:00:00Z",
        }
    ],
    "stale_reason": None,
    "changes": [],
    "result": {},
    "you": {"may_vote": True, "may_cancel": False, "reason": ""},
}


# --- views ------------------------------------------------------------------------------

LIST_PARAMETERS = ("state", "mine", "waiting_for_me", "cursor", "limit")


def _boolean(params: Any, name: str) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return False
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidInput(
        f"{name} must be true or false; got {raw!r}.",
        code="invalid_filter",
        hint=f"Send ?{name}=true.",
        errors=[{"pointer": "", "parameter": name, "code": "invalid", "message": "Not a boolean.", "hint": "true"}],
    )


class ApprovalList(ActorMixin, generics.GenericAPIView):
    queryset = ApprovalRequest.objects.none()  # for the schema only; get() asks the selector
    serializer_class = ApprovalSerializer
    pagination_class = CursorPagination

    @extend_schema(
        operation_id="approvals_list",
        summary="List approval requests",
        description=(
            "Approval requests of your token's environment, newest first, cursor-paginated (`limit` up to "
            "1,000; follow `next`). Filters: `state` (pending, approved, rejected, cancelled, expired, executed, "
            "failed), `mine=true` (requests you filed), `waiting_for_me=true` (pending requests you may vote on "
            "now: not yours, not yet voted, and your roles fill an open step). An unknown parameter is a 400.\n\n"
            "**Permission:** anyone with a role in the environment (`approval.view`); everyone may see every "
            "request of the environment."
        ),
        parameters=[
            OpenApiParameter("state", str, enum=list(ApprovalState.values), description="Only requests in this state."),
            OpenApiParameter("mine", OpenApiTypes.BOOL, description="Only the requests you filed."),
            OpenApiParameter("waiting_for_me", OpenApiTypes.BOOL, description="Only those you may vote on now."),
        ],
        responses={
            200: ApprovalSerializer(many=True),
            **_problems(400, 401, 422),
        },
        examples=[
            OpenApiExample("A page", response_only=True, value={"next": None, "previous": None, "results": [EXAMPLE]})
        ],
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        unknown = sorted(set(params) - set(LIST_PARAMETERS))
        if unknown:
            raise UnknownQueryParameters(
                f"Unknown query parameter(s): {', '.join(unknown)}.",
                hint=f"Use only: {', '.join(LIST_PARAMETERS)}.",
                allowed_parameters=list(LIST_PARAMETERS),
            )
        state = params.get("state") or None
        if state is not None and state not in ApprovalState.values:
            raise InvalidInput(
                f"Unknown state {state!r}.",
                code="invalid_filter",
                hint=f"Use one of: {', '.join(ApprovalState.values)}.",
            )
        requests = selectors.approval_list(
            actor=self.actor,
            state=state,
            mine=_boolean(params, "mine"),
            waiting_for_me=_boolean(params, "waiting_for_me"),
        )
        page = self.paginate_queryset(requests)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ApprovalDetail(ActorMixin, APIView):
    @extend_schema(
        operation_id="approvals_retrieve",
        summary="Show one approval request",
        description=(
            "The request with its votes, the policy snapshot that asked for it, the steps and who filled them, "
            "whether it is stale (the target changed after it was filed: earlier votes stop counting), when it "
            "is scheduled to run (publishes and activations wait for the environment's change window) and, once "
            "run, its result or error with a hint. `you` says whether you may vote or cancel, and why not.\n\n"
            "**Permission:** anyone with a role in the environment (`approval.view`)."
        ),
        responses={200: ApprovalDetailSerializer, **_problems(401, 404)},
        examples=[OpenApiExample("Waiting for a developer or admin", response_only=True, value=DETAIL_EXAMPLE)],
    )
    def get(self, request: Request, approval_id: int) -> Response:
        approval = selectors.approval_get(actor=self.actor, approval_id=approval_id)
        return Response(approval_detail(approval, self.actor))


def _decision_response(actor: Actor, outcome: services.VoteOutcome) -> Response:
    fresh = selectors.approval_get(actor=actor, approval_id=outcome.request.pk)
    return Response({"approval": approval_detail(fresh, actor), "message": outcome.message, "notices": outcome.notices})


class ApprovalApprove(ActorMixin, APIView):
    policy_actions = {"POST": "approval.vote"}

    @extend_schema(
        operation_id="approvals_approve",
        summary="Approve a request",
        description=(
            "Your approval fills one open step of the request's policy (a person fills one step, whatever roles "
            "they hold). The last approval approves the request and runs the action with the requester as actor: "
            "at once, or — for publishes and activations in an environment with change windows — at the next "
            "opening, which the response and the request's summary state. If the target changed since the "
            "request was filed, the request becomes stale, earlier approvals stop counting and `notices` says "
            "so. `comment` is optional.\n\n"
            "**Permission:** a role of an open step (e.g. approver; developer or admin for dual control; "
            "compliance reviewer on exports only), never on your own request; a token needs the `write` scope."
        ),
        request=CommentSerializer,
        responses={
            200: DecisionResponseSerializer,
            **_problems(401, 403, 404, 409),
        },
        examples=[
            OpenApiExample("Request", request_only=True, value={"comment": "Checked the reach waterfall."}),
            OpenApiExample(
                "Scheduled to the next change window",
                response_only=True,
                value={
                    "approval": {
                        **DETAIL_EXAMPLE,
                        "action": "audience.publish",
                        "state": "approved",
                        "required": 1,
                        "received": 1,
                        "scheduled_for": "2026-03-09T09:00:00Z",
                        "summary": "Publish 'Spring sale EU' (reach 61,204) — scheduled for Mon 9 Mar 2026 09:00 "
                        "Europe/London (next change window)",
                    },
                    "message": "Approved (1 of 1). In production, audience.publish runs only inside change windows "
                    "(Mon, Tue, Wed, Thu 09:00–17:00 (Europe/London)); it is scheduled for Mon 9 Mar 2026 09:00 "
                    "Europe/London, the next opening.",
                    "notices": [],
                },
            ),
            OpenApiExample(
                "Your own request",
                response_only=True,
                status_codes=["403"],
                value={
                    "type": "https://marketerapi.dev/errors/self-approval",
                    "title": "You cannot vote on your own request",
                    "status": 403,
                    "detail": "You filed request 41; no one approves their own request (PRODUCT.md §5).",
                    "code": "self_approval",
                    "hint": "Someone else with the role the request names must approve it; you may cancel it instead.",
                    "request_id": "req_5f0c…",
                },
            ),
        ],
    )
    def post(self, request: Request, approval_id: int) -> Response:
        body = CommentSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        approval = selectors.approval_get(actor=self.actor, approval_id=approval_id)
        outcome = services.approval_approve(
            actor=self.actor, request=approval, comment=body.validated_data.get("comment", "")
        )
        return _decision_response(self.actor, outcome)


class ApprovalReject(ActorMixin, APIView):
    policy_actions = {"POST": "approval.vote"}

    @extend_schema(
        operation_id="approvals_reject",
        summary="Reject a request",
        description=(
            "Rejects the request and ends it: any rejection does. `comment` is required — say what should "
            "change, the requester reads it.\n\n"
            "**Permission:** as for approving: a role of an open step, never on your own request; a token needs "
            "the `write` scope."
        ),
        request=CommentSerializer,
        responses={
            200: DecisionResponseSerializer,
            **_problems(
                401, 403, 404, 409, 422, overrides={422: "No comment (`comment_required`); the hint shows an example."}
            ),
        },
        examples=[
            OpenApiExample(
                "Request", request_only=True, value={"comment": "Reach is too wide; exclude the opted-out regions."}
            )
        ],
    )
    def post(self, request: Request, approval_id: int) -> Response:
        body = CommentSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        approval = selectors.approval_get(actor=self.actor, approval_id=approval_id)
        outcome = services.approval_reject(
            actor=self.actor, request=approval, comment=body.validated_data.get("comment", "")
        )
        return _decision_response(self.actor, outcome)


class ApprovalCancel(ActorMixin, APIView):
    policy_actions = {"POST": "approval.cancel"}

    @extend_schema(
        operation_id="approvals_cancel",
        summary="Cancel your request",
        description=(
            "Withdraws a request you filed, while it is pending or approved and not yet running (e.g. waiting "
            "for a change window). No body.\n\n"
            "**Permission:** the requester only; a token needs the `write` scope."
        ),
        request=None,
        responses={
            200: DecisionResponseSerializer,
            **_problems(
                401,
                403,
                404,
                409,
                overrides={
                    403: "You did not file the request (`not_requester`); refusals are audited.",
                    409: "The request is already decided, running or done (`approval_closed`).",
                },
            ),
        },
    )
    def post(self, request: Request, approval_id: int) -> Response:
        approval = selectors.approval_get(actor=self.actor, approval_id=approval_id)
        cancelled = services.approval_cancel(actor=self.actor, request=approval)
        outcome = services.VoteOutcome(cancelled, f"Cancelled: request {cancelled.pk} will not run.")
        return _decision_response(self.actor, outcome)


urlpatterns = [
    re_path(r"^approvals/?$", ApprovalList.as_view(), name="approval-list"),
    re_path(r"^approvals/(?P<approval_id>[0-9]+)/?$", ApprovalDetail.as_view(), name="approval-detail"),
    re_path(r"^approvals/(?P<approval_id>[0-9]+)/approve/?$", ApprovalApprove.as_view(), name="approval-approve"),
    re_path(r"^approvals/(?P<approval_id>[0-9]+)/reject/?$", ApprovalReject.as_view(), name="approval-reject"),
    re_path(r"^approvals/(?P<approval_id>[0-9]+)/cancel/?$", ApprovalCancel.as_view(), name="approval-cancel"),
]
