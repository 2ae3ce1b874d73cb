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

from governance.metrics import selectors
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


urlpatterns: list[Any] = [
    re_path(r"^metrics/adoption/?$", AdoptionMetricsView.as_view(), name="metrics-adoption"),
    re_path(r"^metrics/policy/?$", PolicyMetricsView.as_view(), name="metrics-policy"),
]
