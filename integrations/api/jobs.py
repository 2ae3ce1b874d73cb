"""Follow an asynchronous job (`GET /jobs/{id}`): readable by every role, in its environment."""

from __future__ import annotations

from django.urls import re_path
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.jobs import selectors as jobs
from integrations.models import JobState
from marketerapi.api import ActorMixin, problem_responses


class NoteSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    hint = serializers.CharField(allow_blank=True)
    destination = serializers.DictField(required=False, help_text="{id, name, adapter} when about a destination.")
    retry_at = serializers.DateTimeField(required=False, allow_null=True)
    resolved_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Set when deferred work was delivered after the job finished."
    )


class JobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="e.g. destination.push, audience.publish, export")
    state = serializers.ChoiceField(JobState.values)
    environment = serializers.CharField()
    target = serializers.DictField(allow_null=True, help_text="{type, id} of what the job works on.")
    progress = serializers.DictField(help_text="{done, total, percent} as far as known.")
    queue_position = serializers.IntegerField(
        allow_null=True, help_text="1 = next among queued jobs of its kind; null unless queued."
    )
    warnings = NoteSerializer(many=True)
    # DRF's metaclass takes declared fields off the class, so Serializer.errors is not shadowed.
    errors = NoteSerializer(many=True)  # type: ignore[assignment]
    result = serializers.DictField()
    requested_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)


_FAILURES = {
    401: "No token, or an unknown, expired or revoked one.",
    403: "Your user has no role.",
    404: "No such job in your environment (`job_not_found`).",
}

EXAMPLE_JOB = {
    "id": 812,
    "kind": "destination.push",
    "state": "partially_succeeded",
    "environment": "production",
    "target": {"type": "audiences.audience", "id": "42"},
    "progress": {"done": 2, "total": 2, "percent": 100.0},
    "queue_position": None,
    "warnings": [
        {
            "code": "destination_deferred",
            "message": "Braze is unavailable (5 failures, last: 503). 12,000 added members are queued and will be "
            "retried from 14:05 UTC; nothing was lost.",
            "hint": "Nothing to do: delivery resumes by itself. GET /api/v1/destinations/3/health shows the circuit "
            "breaker; once the vendor is back, POST /api/v1/destinations/3/test retries at once.",
            "destination": {"id": 3, "name": "Braze", "adapter": "engagement"},
            "push_id": 1207,
            "retry_at": "2026-11-28T14:05:02Z",
            "resolved_at": None,
        }
    ],
    "errors": [],
    "result": {
        "destinations": {
            "3": {
                "name": "Braze",
                "pushes": 1,
                "delivered": 0,
                "state": "deferred",
                "retry_at": "2026-11-28T14:05:02Z",
            },
            "4": {"name": "crm", "pushes": 1, "delivered": 12000, "state": "succeeded"},
        }
    },
    "requested_by": "op-maria",
    "created_at": "2026-11-28T14:03:58Z",
    "started_at": "2026-11-28T14:03:59Z",
    "finished_at": "2026-11-28T14:04:03Z",
    "heartbeat_at": "2026-11-28T14:04:03Z",
}


class JobDetail(ActorMixin, APIView):
    @extend_schema(
        operation_id="jobs_retrieve",
        summary="Follow an asynchronous job",
        description="State (`queued` → `running` → `succeeded` | `partially_succeeded` | `failed` | `cancelled`), "
        "progress, queue position among the queued jobs of its kind, warnings and errors — each with a `hint` "
        "saying what to do. A job that delivered to a destination that was down ends `partially_succeeded` with a "
        "warning per destination naming what is queued and when it is retried; when that work is delivered later "
        "the warning gets `resolved_at`.\n\n**Permission:** `job.view` — every role. Jobs of another environment "
        "answer 404.",
        responses={200: JobSerializer, **problem_responses(401, 403, 404, failures=_FAILURES)},
        examples=[OpenApiExample("Partially succeeded", value=EXAMPLE_JOB, response_only=True)],
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = jobs.job_get(actor=self.actor, job_id=job_id)
        # The notes carry keys of their own (destination, push_id, rows…): returned as they are;
        # JobSerializer documents the shape.
        return Response(jobs.job_as_public(job))


urlpatterns = [
    re_path(r"^jobs/(?P<job_id>[0-9]+)/?$", JobDetail.as_view(), name="job-detail"),
]
