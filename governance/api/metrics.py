"""Metrics API: adoption (`GET /metrics/adoption`), the policy feedback loop
(`GET /metrics/policy`) and policy simulation (`POST /metrics/policy/simulate`).

Approvers, admins and marketing ops; the figures are of the caller's environment.
"""

from __future__ import annotations

from typing import Any

from django.urls import re_path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.approvals import approval_brief
from governance.metrics import selectors
from governance.metrics.rules import rule_parse
from governance.metrics.services import approval_policy_propose
from governance.metrics.simulation import APPROVAL_POLICY
from marketerapi.api import ActorMixin, problem_responses

PERIOD_PARAMETERS = [
    OpenApiParameter("environment", str, description="Your environment's slug (another one is a 404)."),
    OpenApiParameter("since", str, description="ISO 8601 date-time or date; default 30 days before until."),
    OpenApiParameter("until", str, description="ISO 8601 date-time or date (exclusive); default now."),
]
FAILURES = {
    403: "Only approvers, admins and marketing ops read metrics (`permission_denied`).",
    422: "since or until is not a date-time, or since is not before until (`invalid_period`).",
}

EXAMPLE_ADOPTION = {
    "period": {"environment": "pilot", "since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
    "completed_without_intervention": {"completed": 40, "without_intervention": 37, "share": 0.925},
    "self_resolved_errors": {"errors_4xx": 52, "self_resolved": 41, "share": 0.7885},
    "workflows": [
        {
            "workflow": "audience",
            "label": "Audience created → published",
            "completed": 40,
            "without_intervention": 37,
            "share_without_intervention": 0.925,
            "time_to_completion": {"count": 40, "median_seconds": 5400.0, "p90_seconds": 86400.0},
            "errors_4xx": 52,
            "self_resolved": 41,
            "self_resolved_share": 0.7885,
        }
    ],
    "approval_lead_time": {"count": 12, "median_seconds": 2700.0, "p90_seconds": 14400.0},
    "doors": [{"action": "audience.publish", "api": 30, "portal": 12, "admin": 2, "self_service_share": 0.9545}],
}


class AdoptionMetricsView(ActorMixin, APIView):
    @extend_schema(
        operation_id="metrics_adoption",
        summary="Adoption metrics",
        description="How self-service the environment is over a period (default the last 30 days): workflows "
        "completed without engineering intervention (no admin-door action on the object between start and "
        "finish), 4xx errors that the same person resolved within 30 minutes, time to completion per workflow "
        "and approval lead time (median and p90, seconds), and per action the API and portal against the admin. "
        "Needs the approver, admin or marketing_ops role.",
        parameters=PERIOD_PARAMETERS,
        responses={200: OpenApiTypes.OBJECT, **problem_responses(400, 401, 403, 404, 422, failures=FAILURES)},
        examples=[OpenApiExample("A month in pilot", value=EXAMPLE_ADOPTION, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.adoption_metrics(actor=self.actor, params=request.query_params))


class PolicyMetricsView(ActorMixin, APIView):
    @extend_schema(
        operation_id="metrics_policy",
        summary="Policy feedback",
        description="Which rate limits, quotas, denials and approval policies fired most in the period, for whom "
        "(the top people of each), and suggestions where the same legitimate workflow routinely hits a limit: "
        "at least `rule.min_hits` refusals that the same person then got through within 30 minutes, by at "
        "least `rule.min_people` people. Needs the approver, admin or marketing_ops role.",
        parameters=PERIOD_PARAMETERS,
        responses={200: OpenApiTypes.OBJECT, **problem_responses(400, 401, 403, 404, 422, failures=FAILURES)},
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.policy_metrics(actor=self.actor, params=request.query_params))


SIMULATE_FAILURES = {
    **FAILURES,
    422: "The rule is not valid (`invalid_rule`: each entry of `errors` has a pointer and a hint), or the period "
    "is not (`invalid_period`).",
}


class PolicySimulateView(ActorMixin, APIView):
    rate_class = "preview"
    policy_actions = {"POST": "metrics.view"}

    @extend_schema(
        operation_id="metrics_policy_simulate",
        summary="Simulate a proposed rule",
        description="Replays the last 30 days (or `?since=&until=`) of the request log and the audit trail "
        "against a proposed rate limit, quota or approval policy, and answers who would have been limited, "
        "refused or asked for approval, how often, beside what the rules in force did. Nothing is saved. "
        'Body: `{"kind": "rate_limit", "rate_class": "write", "limit": 60, "role": "campaign_operator"}`, '
        '`{"kind": "quota", "action": "audience.publish", "limit": 5, "period": "day"}` or `{"kind": '
        '"approval_policy", "action": "audience.publish", "metric": "reach", "threshold": 10000, "steps": '
        '[["approver"]]}`. Needs the approver, admin or marketing_ops role.',
        parameters=PERIOD_PARAMETERS,
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, **problem_responses(400, 401, 403, 404, 422, failures=SIMULATE_FAILURES)},
        examples=[
            OpenApiExample(
                "A lower write limit for operators",
                value={"kind": "rate_limit", "rate_class": "write", "limit": 30, "role": "campaign_operator"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        rule = rule_parse(request.data)
        return Response(selectors.policy_simulate(actor=self.actor, rule=rule, params=request.query_params))


class PolicyProposalView(ActorMixin, APIView):
    policy_actions = {"POST": "approval_policy.propose"}

    @extend_schema(
        operation_id="metrics_policy_propose",
        summary="Propose an approval-policy change",
        description="Files an approval request that an admin decides: a new approval policy, or a change of "
        "one (`policy_id`), with what the simulation of the last 30 days says it would have done. Approving "
        "applies it. Body as a simulation of kind `approval_policy`, plus optional `policy_id`, `description`, "
        "`is_active`. Answers 202 with the approval request. Needs the marketing_ops or admin role.",
        request=OpenApiTypes.OBJECT,
        responses={
            202: OpenApiTypes.OBJECT,
            **problem_responses(400, 401, 403, 404, 409, 422, failures=SIMULATE_FAILURES),
        },
    )
    def post(self, request: Request) -> Response:
        rule = rule_parse(request.data, kinds=(APPROVAL_POLICY,))
        outcome = approval_policy_propose(actor=self.actor, rule=rule)
        if outcome.approval is not None:
            return Response(approval_brief(outcome.approval), status=202)
        return Response(outcome.result, status=200)


urlpatterns: list[Any] = [
    re_path(r"^metrics/policy/simulate/?$", PolicySimulateView.as_view(), name="metrics-policy-simulate"),
    re_path(r"^metrics/policy/proposals/?$", PolicyProposalView.as_view(), name="metrics-policy-proposals"),
    re_path(r"^metrics/adoption/?$", AdoptionMetricsView.as_view(), name="metrics-adoption"),
    re_path(r"^metrics/policy/?$", PolicyMetricsView.as_view(), name="metrics-policy"),
]
