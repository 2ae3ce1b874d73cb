"""The timeline of domain events (`GET /events/`): what changed in the product, in the
shape webhooks carry it."""

from __future__ import annotations

from typing import Any, ClassVar

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from governance.models import OutboxEvent
from governance.outbox import EVENT_TYPES
from integrations.outbox import selectors
from marketerapi.api import ActorMixin, MomentFilter, StrictFilterSet, problem_responses

_FAILURES = {
    400: "An unknown query parameter or a bad `since`.",
    401: "No token, or an unknown, expired or revoked one.",
    403: "Your user has no role (`permission_denied`).",
}


class DomainEventSerializer(serializers.Serializer):
    """`OutboxEvent.as_public()`: the same shape as a webhook's body."""

    id = serializers.CharField(help_text="evt_<32 hex>; stable, use it to deduplicate.")
    type = serializers.ChoiceField(sorted(EVENT_TYPES))
    occurred_at = serializers.DateTimeField()
    environment = serializers.CharField()
    # DRF's metaclass takes declared fields off the class, so Serializer.data is not shadowed.
    data = serializers.DictField(help_text="The event's payload; its shape depends on `type`.")  # type: ignore[assignment]

    def to_representation(self, instance: OutboxEvent) -> dict[str, Any]:
        return instance.as_public()


class DomainEventFilter(StrictFilterSet):
    type = filters.CharFilter(
        method="filter_type", help_text="One type or several separated by commas, e.g. consent.updated."
    )
    since = MomentFilter(
        field_name="occurred_at", lookup_expr="gte", help_text="Events at or after this time (ISO 8601)."
    )

    class Meta:
        model = OutboxEvent
        fields: ClassVar[list[str]] = []

    def filter_type(self, queryset: Any, name: str, value: str) -> Any:
        types = [t.strip() for t in value.split(",") if t.strip()]
        return queryset.filter(type__in=types)


class DomainEventList(ActorMixin, generics.ListAPIView):
    serializer_class = DomainEventSerializer
    filterset_class = DomainEventFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return OutboxEvent.objects.none()
        return selectors.domain_event_list(actor=self.actor)

    @extend_schema(
        operation_id="events_list",
        summary="The timeline of domain events",
        description=(
            "What changed in your token's environment, newest first, cursor-paginated: each event is "
            "`{id, type, occurred_at, environment, data}`, the same body a webhook carries. Filter with "
            "`type` (one or several, comma-separated: "
            + ", ".join(f"`{t}`" for t in sorted(EVENT_TYPES))
            + ") and `since` (ISO 8601). Poll with `since` or follow `next` to catch up after downtime.\n\n"
            "**Permission:** any role (`domain_event.view`)."
        ),
        responses={200: DomainEventSerializer(many=True), **problem_responses(400, 401, 403, failures=_FAILURES)},
        examples=[
            OpenApiExample(
                "A consent change",
                response_only=True,
                value={
                    "id": "evt_3f1d2c0a9b8e4f6a8c7d6e5f4a3b2c1d",
                    "type": "consent.updated",
                    "occurred_at": "2026-03-04T17:05:03.512000Z",
                    "environment": "sandbox",
                    "data": {
                        "external_id": "cust-000123",
                        "changes": [
                            {
                                "channel": "email",
                                "status": "denied",
                                "previous_status": "granted",
                                "captured_at": "2026-03-04T17:05:00Z",
                                "source": "preference_center",
                            }
                        ],
                    },
                },
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)
