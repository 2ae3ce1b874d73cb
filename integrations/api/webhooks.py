"""The webhooks API: subscriptions and their delivery log (the dead-letter list is dead_letters.py).

Thin doors: a serializer checks the shape (unknown fields are a 400), integrations/webhooks/
checks the values (bad URL, unknown event type: 422), asks the policy engine and writes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.urls import re_path
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.outbox import EVENT_TYPES
from integrations.models import DeliveryAttempt, DeliveryState, WebhookDelivery
from integrations.models import WebhookSubscription as Subscription
from integrations.webhooks import selectors, services
from marketerapi.api import ActorMixin, StrictFilterSet, StrictSerializer, problem_responses

# --- serializers ----------------------------------------------------------------------


class WebhookSerializer(serializers.ModelSerializer):
    # Plain strings in the schema: `state` enums of several components would collide by name.
    state = serializers.CharField(read_only=True, help_text="`active`, or `paused` (see `paused_reason`).")
    environment = serializers.CharField(source="environment.slug", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    event_types = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Subscription
        fields: ClassVar[list[str]] = [
            "id",
            "url",
            "event_types",
            "description",
            "state",
            "paused_reason",
            "failing_since",
            "environment",
            "created_by",
            "created_at",
        ]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="The signing secret: shown in this response only.")
    warning = serializers.CharField()

    class Meta(WebhookSerializer.Meta):
        fields: ClassVar[list[str]] = [*WebhookSerializer.Meta.fields, "secret", "warning"]


class WebhookCreateSerializer(StrictSerializer):
    url = serializers.CharField(
        max_length=2000, help_text="https:// (http:// only in a sandbox or to loopback). No user:password@."
    )
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64), help_text=f"One or more of: {', '.join(sorted(EVENT_TYPES))}."
    )
    secret = serializers.CharField(
        required=False,
        trim_whitespace=False,
        help_text="Your own signing secret (24–200 characters); leave it out to have one generated.",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)


class WebhookUpdateSerializer(StrictSerializer):
    url = serializers.CharField(required=False, max_length=2000)
    event_types = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    state = serializers.CharField(
        required=False,
        help_text="`active` resumes a paused subscription; `paused` holds its deliveries.",
    )
    secret = serializers.CharField(required=False, trim_whitespace=False, help_text="Replace the signing secret.")
    rotate_secret = serializers.BooleanField(
        required=False, help_text="Generate a new signing secret; it is in this response only."
    )


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields: ClassVar[list[str]] = ["attempt", "status_code", "latency_ms", "error", "attempted_at"]


class DeliverySerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text="pending, succeeded, dead or discarded.")
    event_id = serializers.CharField(source="event.public_id", help_text="evt_…; the Marketerapi-Event-Id header.")
    event_type = serializers.CharField(source="event.type")
    next_attempt_at = serializers.SerializerMethodField()
    log = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields: ClassVar[list[str]] = [
            "id",
            "event_id",
            "event_type",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_latency_ms",
            "last_error",
            "created_at",
            "delivered_at",
            "log",
        ]

    def get_next_attempt_at(self, delivery: WebhookDelivery) -> str | None:
        if delivery.state != DeliveryState.PENDING:
            return None
        return serializers.DateTimeField().to_representation(delivery.next_attempt_at)


# --- examples and failure modes --------------------------------------------------------

EXAMPLE_WEBHOOK = {
    "id": 12,
    "url": "https://hooks.example.com/marketerapi",
    "event_types": ["audience.published", "consent.updated"],
    "description": "CRM sync",
    "state": "active",
    "paused_reason": "",
    "failing_since": None,
    "environment": "sandbox",
    "created_by": "dev-ana",
    "created_at": "2026-03-04T17:05:03Z",
}
EXAMPLE_DELIVERY = {
    "id": 981,
    "event_id": "evt_3f1d2c0a9b8e4f6a8c7d6e5f4a3b2c1d",
    "event_type": "consent.updated",
    "state": "pending",
    "attempts": 2,
    "next_attempt_at": "2026-03-04T17:09:41Z",
    "last_status_code": 503,
    "last_latency_ms": 84,
    "last_error": "HTTP 503: upstream unavailable",
    "created_at": "2026-03-04T17:05:03Z",
    "delivered_at": None,
    "log": [
        {
            "attempt": 1,
            "status_code": None,
            "latency_ms": 3001,
            "error": "Connect timeout: no connection within 3 s.",
            "attempted_at": "2026-03-04T17:05:04Z",
        },
        {
            "attempt": 2,
            "status_code": 503,
            "latency_ms": 84,
            "error": "HTTP 503: upstream unavailable",
            "attempted_at": "2026-03-04T17:05:41Z",
        },
    ],
}
_FAILURES = {
    400: "Malformed JSON (`malformed_json`), unknown fields (`unknown_fields`, listed with `allowed_fields`), a "
    "value of the wrong type (`invalid_request`) or an unknown query parameter (`unknown_query_parameter`).",
    401: "No token, or an unknown, expired or revoked one (`not_authenticated`, `invalid_token`, …).",
    403: "Your roles or your token's scopes do not allow this (`permission_denied`): webhooks need the developer "
    "or admin role and a token with the `admin` scope. The refusal is audited.",
    404: "No such subscription in your token's environment (`webhook_not_found`): objects of other environments "
    "are never shown.",
    422: "A bad value: `invalid_state`, `invalid_url`, `url_has_credentials`, `url_not_allowed`, `https_required` "
    "(http:// outside a sandbox, except to loopback), `unknown_event_type` (the problem lists `allowed_event_types`), "
    "`no_event_types`, `weak_secret`, `conflicting_fields`.",
}


PERMISSION_VIEW = "\n\n**Permission:** developer or admin (`webhook.view`); token scope `admin`."
PERMISSION_CHANGE = "\n\n**Permission:** developer or admin (`webhook.{}`); token scope `admin`. Audited."


# --- views ---------------------------------------------------------------------------


class WebhookList(ActorMixin, generics.ListAPIView):
    serializer_class = WebhookSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Subscription.objects.none()
        return selectors.webhook_list(actor=self.actor)

    @extend_schema(
        operation_id="webhooks_list",
        summary="List webhook subscriptions",
        description="The subscriptions of your token's environment, newest first, cursor-paginated. Secrets are "
        "never shown again; `state` is `active` or `paused` (then `paused_reason` says why)." + PERMISSION_VIEW,
        responses={200: WebhookSerializer(many=True), **problem_responses(400, 401, 403, failures=_FAILURES)},
        examples=[OpenApiExample("A subscription", value=[EXAMPLE_WEBHOOK], response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        operation_id="webhooks_create",
        summary="Subscribe a URL to domain events",
        description="Creates a subscription in your token's environment. Each matching event is POSTed as "
        "`{id, type, occurred_at, environment, data}`, signed in `Marketerapi-Signature` "
        '(`t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`), with `Marketerapi-Event-Id` to deduplicate by. '
        "The signing `secret` is generated when you send none and is in this response **only**: store it now. "
        "Delivery is at least once, in order per aggregate, retried 8 times over about a day "
        "(see docs/webhooks.md). URLs: https://; plain http:// only in a sandbox or to a loopback address."
        + PERMISSION_CHANGE.format("create"),
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer, **problem_responses(400, 401, 403, 422, failures=_FAILURES)},
        examples=[
            OpenApiExample(
                "Request",
                request_only=True,
                value={
                    "url": "https://hooks.example.com/marketerapi",
                    "event_types": ["audience.published", "consent.updated"],
                    "description": "CRM sync",
                },
            ),
            OpenApiExample(
                "Response",
                response_only=True,
                status_codes=["201"],
                value={
                    **EXAMPLE_WEBHOOK,
                    "secret": "whsec_Jm3c0d1Fq…",
                    "warning": "This is the only time the secret is shown. Store it in your secret manager now.",
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = WebhookCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.webhook_create(actor=self.actor, **serializer.validated_data)
        return Response(_with_secret(created), status=status.HTTP_201_CREATED)


def _with_secret(change: services.SubscriptionChange) -> dict[str, Any]:
    body = dict(WebhookSerializer(change.subscription).data)
    if change.secret is not None:
        body["secret"] = change.secret
        body["warning"] = "This is the only time the secret is shown. Store it in your secret manager now."
    return body


class WebhookDetail(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"PATCH": "webhook.update", "DELETE": "webhook.delete"}

    @extend_schema(
        operation_id="webhooks_retrieve",
        summary="Show one webhook subscription",
        description="One subscription of your token's environment (never its secret)." + PERMISSION_VIEW,
        responses={200: WebhookSerializer, **problem_responses(401, 403, 404, failures=_FAILURES)},
        examples=[OpenApiExample("A subscription", value=EXAMPLE_WEBHOOK, response_only=True)],
    )
    def get(self, request: Request, webhook_id: int) -> Response:
        return Response(WebhookSerializer(selectors.webhook_get(actor=self.actor, webhook_id=webhook_id)).data)

    @extend_schema(
        operation_id="webhooks_update",
        summary="Change, pause or resume a webhook subscription",
        description='Change `url`, `event_types` or `description`; `{"state": "paused"}` holds its deliveries, '
        '`{"state": "active"}` resumes a paused one (also one paused automatically after a day of failures): '
        "held deliveries are sent at once. `secret` replaces the signing secret; `rotate_secret: true` generates "
        "one, returned in this response only." + PERMISSION_CHANGE.format("update"),
        request=WebhookUpdateSerializer,
        responses={200: WebhookCreatedSerializer, **problem_responses(400, 401, 403, 404, 422, failures=_FAILURES)},
        examples=[
            OpenApiExample("Resume", request_only=True, value={"state": "active"}),
            OpenApiExample("Resumed", response_only=True, value=EXAMPLE_WEBHOOK),
        ],
    )
    def patch(self, request: Request, webhook_id: int) -> Response:
        subscription = selectors.webhook_get(actor=self.actor, webhook_id=webhook_id)
        serializer = WebhookUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changed = services.webhook_update(actor=self.actor, subscription=subscription, **serializer.validated_data)
        return Response(_with_secret(changed))

    @extend_schema(
        operation_id="webhooks_destroy",
        summary="Delete a webhook subscription",
        description="Deletes the subscription with its pending deliveries and delivery log; nothing more is sent. "
        "Its open dead letters stay listed (discard them). To stop for a while, pause it instead."
        + PERMISSION_CHANGE.format("delete"),
        responses={204: None, **problem_responses(401, 403, 404, failures=_FAILURES)},
    )
    def delete(self, request: Request, webhook_id: int) -> Response:
        subscription = selectors.webhook_get(actor=self.actor, webhook_id=webhook_id)
        services.webhook_delete(actor=self.actor, subscription=subscription)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryFilter(StrictFilterSet):
    state = filters.ChoiceFilter(choices=DeliveryState.choices, help_text="pending, succeeded, dead or discarded.")

    class Meta:
        model = WebhookDelivery
        fields: ClassVar[list[str]] = []


class WebhookDeliveryList(ActorMixin, generics.ListAPIView):
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return WebhookDelivery.objects.none()
        subscription = selectors.webhook_get(actor=self.actor, webhook_id=self.kwargs["webhook_id"])
        return selectors.webhook_delivery_list(actor=self.actor, subscription=subscription)

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        summary="The delivery log of a webhook subscription",
        description="One entry per event sent (or to send) to this subscription, newest first, cursor-paginated, "
        "each with its attempts: status code, latency, error. `state`: `pending` (`next_attempt_at` says when), "
        "`succeeded`, `dead` (after the last attempt; see /dead-letters/) or `discarded`." + PERMISSION_VIEW,
        parameters=[OpenApiParameter("limit", int, description="Page size, at most 1000 (default 100).")],
        responses={200: DeliverySerializer(many=True), **problem_responses(400, 401, 403, 404, failures=_FAILURES)},
        examples=[OpenApiExample("A retried delivery", value=[EXAMPLE_DELIVERY], response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


urlpatterns = [
    re_path(r"^webhooks/?$", WebhookList.as_view(), name="webhook-list"),
    re_path(r"^webhooks/(?P<webhook_id>[0-9]+)/?$", WebhookDetail.as_view(), name="webhook-detail"),
    re_path(
        r"^webhooks/(?P<webhook_id>[0-9]+)/deliveries/?$", WebhookDeliveryList.as_view(), name="webhook-deliveries"
    ),
]
