"""The dead-letter list: work that failed after its last retry (webhook deliveries, outbox
events whose fan-out kept failing, destination pushes), and replaying or discarding it.

Thin doors over integrations/webhooks/selectors.py and services.py; each kind's replay is
registered in integrations/webhooks/dead_letters.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.urls import re_path
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.models import DeadLetter
from integrations.webhooks import selectors, services
from marketerapi.api import ActorMixin, StrictFilterSet, problem_responses

# --- serializers ----------------------------------------------------------------------


class DeadLetterSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()
    resolved_by = serializers.CharField(source="resolved_by.username", default=None)

    class Meta:
        model = DeadLetter
        fields: ClassVar[list[str]] = [
            "id",
            "kind",
            "reference_id",
            "payload",
            "attempts",
            "last_error",
            "state",
            "created_at",
            "resolved_at",
            "resolved_by",
        ]

    def get_state(self, letter: DeadLetter) -> str:
        return letter.resolution or "open"


class DeadLetterResolvedSerializer(DeadLetterSerializer):
    detail = serializers.CharField(help_text="What happened, e.g. that the delivery was re-queued.")

    class Meta(DeadLetterSerializer.Meta):
        fields: ClassVar[list[str]] = [*DeadLetterSerializer.Meta.fields, "detail"]


# --- examples and failure modes --------------------------------------------------------

EXAMPLE_DEAD_LETTER = {
    "id": 4,
    "kind": "webhook_delivery",
    "reference_id": "981",
    "payload": {
        "delivery_id": 981,
        "subscription_id": 12,
        "url": "https://hooks.example.com/marketerapi",
        "event_id": "evt_3f1d2c0a9b8e4f6a8c7d6e5f4a3b2c1d",
        "event_type": "consent.updated",
        "last_status_code": 500,
    },
    "attempts": 8,
    "last_error": "HTTP 500: Internal Server Error",
    "state": "open",
    "created_at": "2026-03-05T16:40:12Z",
    "resolved_at": None,
    "resolved_by": None,
}

_FAILURES = {
    400: "An unknown query parameter (`unknown_query_parameter`), or a bad `cursor` or `limit`.",
    401: "No token, or an unknown, expired or revoked one (`not_authenticated`, `invalid_token`, …).",
    403: "Your roles or your token's scopes do not allow this (`permission_denied`): dead letters need the "
    "developer or admin role and a token with the `admin` scope. The refusal is audited.",
    404: "No such dead letter in your token's environment (`dead_letter_not_found`): objects of other environments "
    "are never shown.",
    409: "The dead letter was already replayed or discarded (`dead_letter_resolved`), or its work is gone "
    "(`subscription_deleted`, `delivery_not_dead`, `event_deleted`, `push_not_failed`).",
}
PERMISSION_DEAD = "\n\n**Permission:** developer or admin (`dead_letter.{}`); token scope `admin`."


# --- views ---------------------------------------------------------------------------


class DeadLetterFilter(StrictFilterSet):
    state = filters.ChoiceFilter(
        choices=[("open", "open"), ("replayed", "replayed"), ("discarded", "discarded")],
        method="filter_state",
        help_text="open, replayed or discarded.",
    )
    kind = filters.CharFilter(help_text="webhook_delivery, outbox_dispatch or destination_push.")

    class Meta:
        model = DeadLetter
        fields: ClassVar[list[str]] = []

    def filter_state(self, queryset: Any, name: str, value: str) -> Any:
        if value == "open":
            return queryset.filter(resolved_at__isnull=True)
        return queryset.filter(resolution=value)


class DeadLetterList(ActorMixin, generics.ListAPIView):
    serializer_class = DeadLetterSerializer
    filterset_class = DeadLetterFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return DeadLetter.objects.none()
        return selectors.dead_letter_list(actor=self.actor)

    @extend_schema(
        operation_id="dead_letters_list",
        summary="Work that failed after its last retry",
        description="Dead letters of your token's environment, newest first, cursor-paginated: webhook deliveries "
        "after their 8th failed attempt, outbox events that could not be dispatched, destination pushes. Each "
        "keeps its last error. Filter `state=open` for what still needs a decision; replay or discard each."
        + PERMISSION_DEAD.format("view"),
        responses={200: DeadLetterSerializer(many=True), **problem_responses(400, 401, 403, failures=_FAILURES)},
        examples=[OpenApiExample("A dead webhook delivery", value=[EXAMPLE_DEAD_LETTER], response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


class DeadLetterReplay(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "dead_letter.replay"}

    @extend_schema(
        operation_id="dead_letters_replay",
        summary="Replay a dead letter",
        description="Puts the work back in line with a fresh set of attempts (a webhook delivery is sent again at "
        "once, or when its subscription is resumed if it is paused). The dead letter is marked `replayed`; if the "
        "work fails again it comes back as a new dead letter. Receivers see the same event id again."
        + PERMISSION_DEAD.format("replay")
        + " Audited.",
        request=None,
        responses={200: DeadLetterResolvedSerializer, **problem_responses(401, 403, 404, 409, failures=_FAILURES)},
        examples=[
            OpenApiExample(
                "Replayed",
                response_only=True,
                value={
                    **EXAMPLE_DEAD_LETTER,
                    "state": "replayed",
                    "resolved_at": "2026-03-06T09:12:00Z",
                    "resolved_by": "dev-ana",
                    "detail": "Delivery of evt_3f1d… to https://hooks.example.com/marketerapi re-queued with a fresh "
                    "set of attempts.",
                },
            )
        ],
    )
    def post(self, request: Request, dead_letter_id: int) -> Response:
        letter = selectors.dead_letter_get(actor=self.actor, dead_letter_id=dead_letter_id)
        resolution = services.dead_letter_replay(actor=self.actor, dead_letter=letter)
        return Response({**DeadLetterSerializer(resolution.dead_letter).data, "detail": resolution.detail})


class DeadLetterDiscard(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "dead_letter.discard"}

    @extend_schema(
        operation_id="dead_letters_discard",
        summary="Discard a dead letter",
        description="Gives the work up for good; the dead letter stays listed as `discarded`."
        + PERMISSION_DEAD.format("discard")
        + " Audited.",
        request=None,
        responses={200: DeadLetterResolvedSerializer, **problem_responses(401, 403, 404, 409, failures=_FAILURES)},
        examples=[
            OpenApiExample(
                "Discarded",
                response_only=True,
                value={
                    **EXAMPLE_DEAD_LETTER,
                    "state": "discarded",
                    "resolved_at": "2026-03-06T09:12:00Z",
                    "resolved_by": "dev-ana",
                    "detail": "Discarded; the delivery will not be retried.",
                },
            )
        ],
    )
    def post(self, request: Request, dead_letter_id: int) -> Response:
        letter = selectors.dead_letter_get(actor=self.actor, dead_letter_id=dead_letter_id)
        resolution = services.dead_letter_discard(actor=self.actor, dead_letter=letter)
        return Response({**DeadLetterSerializer(resolution.dead_letter).data, "detail": resolution.detail})


urlpatterns = [
    re_path(r"^dead-letters/?$", DeadLetterList.as_view(), name="dead-letter-list"),
    re_path(
        r"^dead-letters/(?P<dead_letter_id>[0-9]+)/replay/?$", DeadLetterReplay.as_view(), name="dead-letter-replay"
    ),
    re_path(
        r"^dead-letters/(?P<dead_letter_id>[0-9]+)/discard/?$", DeadLetterDiscard.as_view(), name="dead-letter-discard"
    ),
]
