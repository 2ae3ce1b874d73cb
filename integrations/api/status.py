"""The service status (`GET /status`): database, broker, cache, workers and each destination
of the caller's environment, for every role (integrations/status/selectors.py)."""

from __future__ import annotations

from typing import Any

from django.urls import re_path
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.access.auth import OutageTolerantSessionAuthentication, OutageTolerantTokenAuthentication
from integrations.status import selectors
from marketerapi.api import ActorMixin, problem_responses

_FAILURES = {
    401: "No token, or an unknown, expired or revoked one.",
    403: "Your user has no role.",
}


class CheckSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="ok, down or unknown")
    detail = serializers.CharField(required=False)
    hint = serializers.CharField(required=False, help_text="What to do, when the check is not ok.")


class DestinationStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    adapter = serializers.CharField()
    status = serializers.CharField(help_text="ok, degraded, failing, unknown or inactive.")
    breaker = serializers.DictField(help_text="{state, consecutive_failures, retry_at}")
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)
    deferred_pushes = serializers.IntegerField()
    next_retry_at = serializers.DateTimeField(allow_null=True)
    explanation = serializers.CharField()


class StatusSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="ok, degraded or down.")
    checked_at = serializers.DateTimeField()
    environment = serializers.CharField()
    database = serializers.DictField()
    broker = serializers.DictField(help_text='kind is "in-process (no broker)" when jobs run in the web process.')
    cache = serializers.DictField(
        help_text="Redis (tokens, permissions, rate limits, breakers): status ok or down, kind, and a hint when down."
    )
    workers = serializers.DictField(help_text="Celery workers by heartbeat: alive, workers [{name, last_seen, alive}].")
    destinations = DestinationStatusSerializer(many=True)


EXAMPLE_STATUS: dict[str, Any] = {
    "status": "degraded",
    "checked_at": "2026-11-28T14:04:30Z",
    "environment": "production",
    "database": {"status": "ok", "vendor": "postgresql", "latency_ms": 0.8},
    "broker": {"status": "ok", "kind": "redis://redis:6379/1", "latency_ms": 1.9},
    "cache": {"status": "ok", "kind": "redis://redis:6379/0"},
    "workers": {
        "status": "ok",
        "mode": "celery",
        "detail": "2 worker(s) sent a heartbeat in the last 60 s.",
        "alive": 2,
        "workers": [{"name": "celery@worker-1", "last_seen": "2026-11-28T14:04:21Z", "alive": True}],
    },
    "destinations": [
        {
            "id": 3,
            "name": "Braze",
            "adapter": "engagement",
            "status": "degraded",
            "breaker": {"state": "open", "consecutive_failures": 5, "retry_at": "2026-11-28T14:05:02Z"},
            "last_success_at": "2026-11-28T13:58:40Z",
            "last_failure_at": "2026-11-28T14:04:02Z",
            "deferred_pushes": 1,
            "next_retry_at": "2026-11-28T14:05:02Z",
            "explanation": "Calls are paused after 5 consecutive failures (last: 503); 1 push(es) are queued and will "
            "be retried from 14:05 UTC; nothing was lost.",
        }
    ],
}


class StatusView(ActorMixin, APIView):
    # The health endpoint must report a Redis outage, not fail with it: while the token and
    # permission cache does not answer, callers are authenticated from the database
    # (read-only); every other view answers 503 then.
    authentication_classes = [OutageTolerantTokenAuthentication, OutageTolerantSessionAuthentication]

    @extend_schema(
        operation_id="status_retrieve",
        summary="Service status",
        description="Health of the database, the broker (`in-process (no broker)` when jobs run in the web "
        "process), the shared cache, the Celery workers (by heartbeat) and each destination of your environment "
        "with its circuit breaker and last success. `status` is `ok`, `degraded` (a destination is degraded or "
        "failing, no worker is alive, or the cache is down) or `down` (database or broker). Always 200 when the "
        "API answers, Redis down included: then `cache.status` is `down` with a `hint`, and the caller's token is "
        "checked against the database (every other endpoint answers 503 meanwhile). No secrets or URLs with "
        "passwords.\n\n**Permission:** `status.view` — every role.",
        responses={200: StatusSerializer, **problem_responses(401, 403, failures=_FAILURES)},
        examples=[OpenApiExample("One destination down", value=EXAMPLE_STATUS, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.system_status(actor=self.actor))


urlpatterns = [
    re_path(r"^status/?$", StatusView.as_view(), name="status"),
]
