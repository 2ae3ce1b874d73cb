"""The payload preview API: POST /destinations/{id}/preview (campaigns/preview.py)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.definitions import validated
from campaigns import preview
from marketerapi.api import ActorMixin, StrictSerializer, problem_responses

_FAILURES = {
    400: "Unknown fields (`unknown_fields`).",
    401: "No token, or an unknown, expired or revoked one.",
    403: "Your user has no role, or the flag `destination_payload_preview` is off for you (`permission_denied`).",
    404: "No such destination, audience or campaign in your token's environment.",
    422: "Neither or both of `audience` and `campaign`, or a `sample` outside 1–20 (`invalid_input`).",
}


class PreviewRequestSerializer(StrictSerializer):
    audience = serializers.IntegerField(required=False, min_value=1)
    campaign = serializers.IntegerField(required=False, min_value=1)
    sample = serializers.IntegerField(required=False, default=5, min_value=1, max_value=preview.MAX_SAMPLE)


class PayloadRequestSerializer(serializers.Serializer):
    method = serializers.CharField(help_text="POST, PUT … or WRITE for a file drop.")
    url = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField(), help_text="Secrets shown as [redacted].")
    body = serializers.JSONField()


class PayloadPreviewSerializer(serializers.Serializer):
    destination = serializers.DictField()
    operation = serializers.ChoiceField(["members", "send"])
    sample = serializers.IntegerField()
    batch_size = serializers.IntegerField(allow_null=True)
    pii_masked = serializers.BooleanField()
    requests = PayloadRequestSerializer(many=True)


EXAMPLE = {
    "destination": {"id": 3, "name": "Braze", "adapter": "engagement"},
    "operation": "send",
    "sample": 1,
    "batch_size": 50,
    "pii_masked": True,
    "requests": [
        {
            "method": "POST",
            "url": "https://rest.iad-01.braze.com/campaigns/trigger/send",
            "headers": {"authorization": "Bearer [redacted]", "content-type": "application/json"},
            "body": {
                "campaign_id": "c-123",
                "trigger_properties": {"campaign": "Spring winback", "sender": "news@shop.test"},
                "recipients": [
                    {"external_user_id": "cust-000123", "trigger_properties": {"subject": "Hi A***", "body": "…"}}
                ],
            },
        }
    ],
}


class DestinationPayloadPreview(ActorMixin, APIView):
    @extend_schema(
        operation_id="destinations_payload_preview",
        summary="Preview the exact request(s) a destination would receive",
        description="Send `audience` (a members push) or `campaign` (a send) and `sample` (1–20, default 5). "
        "The answer is what the destination's adapter would send for that many sample members — method, URL, "
        "headers with secrets redacted, body — and its batch size, built by the same adapter code that sends "
        "(its requests are recorded instead of sent). Emails, phones and names are masked unless your role may "
        "see PII (compliance reviewers; such a preview is audited as `profile.pii_read`). Nothing is sent.\n\n"
        "**Permission:** any role with the flag `destination_payload_preview` (`destination.preview`).",
        parameters=[OpenApiParameter("destination_id", int, OpenApiParameter.PATH)],
        request=PreviewRequestSerializer,
        responses={200: PayloadPreviewSerializer, **problem_responses(400, 401, 403, 404, 422, failures=_FAILURES)},
        examples=[OpenApiExample("A send", value=EXAMPLE, response_only=True)],
    )
    def post(self, request: Request, destination_id: str) -> Response:
        data: dict[str, Any] = validated(PreviewRequestSerializer, request.data if request.body.strip() else {})
        return Response(preview.destination_preview(actor=self.actor, destination_id=int(destination_id), **data))
