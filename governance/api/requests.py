"""My requests API: `GET /me/requests`, the caller's own entries of the request log."""

from __future__ import annotations

from typing import Any

from django.urls import re_path
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from governance.models import RequestLog
from governance.requestlog.selectors import request_log_list
from marketerapi.api import ActorMixin, problem_responses


class RequestLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = RequestLog
        fields = [
            "id",
            "occurred_at",
            "door",
            "method",
            "route",
            "status",
            "code",
            "rate_class",
            "latency_ms",
            "request_id",
            "token_id",
        ]


EXAMPLE = {
    "id": 981,
    "occurred_at": "2026-12-01T10:02:03Z",
    "door": "api",
    "method": "POST",
    "route": "audience-publish",
    "status": 429,
    "code": "rate_limited",
    "rate_class": "write",
    "latency_ms": 4.2,
    "request_id": "req_5f0c…",
    "token_id": 7,
}


class MyRequestsView(ActorMixin, generics.ListAPIView):
    serializer_class = RequestLogSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return RequestLog.objects.none()
        return request_log_list(actor=self.actor)

    @extend_schema(
        operation_id="me_requests_list",
        summary="Your request history",
        description="Your own API requests and portal pages in this environment, newest first, "
        "cursor-paginated: route, status, the problem `code` of a refusal, latency and request id "
        "(quote it when asking for help). Kept 90 days. Anyone signed in; never anyone else's.",
        responses={200: RequestLogSerializer(many=True), **problem_responses(400, 401)},
        examples=[OpenApiExample("A refused publish", value=[EXAMPLE], response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


urlpatterns = [
    re_path(r"^me/requests/?$", MyRequestsView.as_view(), name="me-requests"),
]
