"""The destinations API: configure downstream tools, test their connection, see their health.

Thin doors: a serializer checks the shape (unknown fields are a 400), the services in
integrations/destinations/ check the values (each adapter's validate_config: 422 with a
pointer and a hint per problem), ask the policy engine, audit and write. Credentials go
in and never come out: responses say `"credentials": "stored"` (encrypted here) or
`"env"` with the variable's name.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from django.urls import re_path
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.destinations import credentials as credentials_store
from integrations.destinations import selectors, services
from integrations.models import Destination
from marketerapi.api import ActorMixin, StrictSerializer, problem_responses
from marketerapi.problems import InvalidInput

# --- serializers ----------------------------------------------------------------------


class BreakerSerializer(serializers.Serializer):
    state = serializers.ChoiceField(["closed", "open", "half_open"])
    consecutive_failures = serializers.IntegerField()
    threshold = serializers.IntegerField(required=False)
    last_error = serializers.CharField(required=False)
    last_failure_at = serializers.DateTimeField(allow_null=True, required=False)
    opened_at = serializers.DateTimeField(allow_null=True, required=False)
    retry_at = serializers.DateTimeField(allow_null=True)
    store = serializers.CharField(required=False, help_text="redis (shared) or in-process")


class PushCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    deferred = serializers.IntegerField(help_text="Held back while the destination is unavailable; retried.")
    failed = serializers.IntegerField(help_text="Failed for good; in the dead-letter list.")


class HealthSerializer(serializers.Serializer):
    # A plain string in the schema: a second `status` enum would collide with the consent one.
    status = serializers.CharField(
        help_text="ok, degraded (the breaker is open or work is deferred), failing (the last call failed), "
        "unknown (nothing sent yet) or inactive."
    )
    breaker = BreakerSerializer()
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
    pushes = PushCountsSerializer()
    next_retry_at = serializers.DateTimeField(allow_null=True)
    explanation = serializers.CharField()


class DestinationSerializer(serializers.ModelSerializer):
    environment = serializers.CharField(source="environment.slug", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    credentials = serializers.SerializerMethodField(
        help_text="`stored` (encrypted here), `env` (read from `credentials_env`) or `none`; never the values."
    )
    credentials_env = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField(help_text="ok, degraded, failing, unknown or inactive.")
    breaker = serializers.SerializerMethodField(help_text="closed, open or half_open.")

    class Meta:
        model = Destination
        fields: ClassVar[list[str]] = [
            "id",
            "name",
            "adapter",
            "environment",
            "config",
            "credentials",
            "credentials_env",
            "is_active",
            "status",
            "breaker",
            "last_success_at",
            "last_failure_at",
            "last_error",
            "created_by",
            "created_at",
        ]

    def get_credentials(self, obj: Destination) -> str:
        return credentials_store.credentials_label(obj)

    def get_credentials_env(self, obj: Destination) -> str | None:
        return obj.credentials_env or None

    def _status(self, obj: Destination) -> dict[str, Any]:
        # The list view passes a page's statuses, computed in one go; otherwise they are
        # computed here once per destination (the context is the serializer's own dict).
        statuses = cast("dict[str, Any]", self.context).setdefault("statuses", {})
        if obj.pk not in statuses:
            statuses[obj.pk] = selectors.destination_status(obj)
        return statuses[obj.pk]

    def get_status(self, obj: Destination) -> str:
        return self._status(obj)["status"]

    def get_breaker(self, obj: Destination) -> str:
        return self._status(obj)["breaker"]["state"]


class DestinationCreateSerializer(StrictSerializer):
    name = serializers.CharField(allow_blank=True, help_text="1–100 characters, unique in the environment.")
    adapter = serializers.CharField(help_text="webhook, file, crm or engagement.")
    config = serializers.JSONField(required=False, help_text="The adapter's settings (docs/destinations.md).")
    credentials = serializers.JSONField(
        required=False, allow_null=True, write_only=True, help_text="Secrets, stored encrypted; never shown back."
    )
    credentials_env = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="Or: a DESTINATION_… variable holding them."
    )
    is_active = serializers.BooleanField(required=False)


class DestinationUpdateSerializer(StrictSerializer):
    name = serializers.CharField(allow_blank=True, required=False)
    adapter = serializers.CharField(required=False, help_text="Cannot change; create a new destination.")
    config = serializers.JSONField(required=False, help_text="Merged into the current config; null removes a key.")
    credentials = serializers.JSONField(required=False, allow_null=True, write_only=True)
    credentials_env = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    message = serializers.CharField()


class TestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    result = serializers.ChoiceField(["passed", "failed"])
    message = serializers.CharField()
    hint = serializers.CharField(allow_blank=True)
    checks = CheckSerializer(many=True)
    latency_ms = serializers.IntegerField()
    tested_at = serializers.DateTimeField()
    requeued_pushes = serializers.IntegerField(help_text="Deferred pushes retried at once because the test passed.")
    health = HealthSerializer()


# --- docs ---------------------------------------------------------------------------------

PERMISSION = (
    "\n\n**Permission:** `destination.{}` — the developer or admin role; through a token, the `admin` scope. "
    "Objects of another environment answer 404."
)


_FAILURES = {
    400: "The body is not JSON of the documented shape, or names unknown fields (`unknown_fields`).",
    401: "No token, or an unknown, expired or revoked one.",
    403: "Your roles do not allow this (`permission_denied`; `hint` names the roles that do).",
    404: "No such destination in your token's environment (`destination_not_found`).",
    422: "The settings are not valid (`invalid_destination`): each entry of `errors` has a `pointer` "
    "(e.g. `/config/url`), a `code` and a `hint`. Sandbox destinations may use only file and webhook adapters "
    "at local targets (`sandbox_adapter_not_allowed`, `sandbox_target_not_local`).",
}


EXAMPLE_DESTINATION = {
    "id": 3,
    "name": "braze-eu",
    "adapter": "engagement",
    "environment": "production",
    "config": {"base_url": "https://rest.fra-01.braze.eu", "subscription_group_id": "sg-7d1c"},
    "credentials": "stored",
    "credentials_env": None,
    "is_active": True,
    "status": "ok",
    "breaker": "closed",
    "last_success_at": "2026-11-28T14:02:11Z",
    "last_failure_at": None,
    "last_error": "",
    "created_by": "dev-ana",
    "created_at": "2026-11-20T09:30:00Z",
}
EXAMPLE_HEALTH = {
    "status": "degraded",
    "breaker": {
        "state": "open",
        "consecutive_failures": 5,
        "threshold": 5,
        "last_error": "503",
        "last_failure_at": "2026-11-28T14:04:02Z",
        "opened_at": "2026-11-28T14:04:02Z",
        "retry_at": "2026-11-28T14:05:02Z",
        "store": "redis",
    },
    "last_success_at": "2026-11-28T13:58:40Z",
    "last_failure_at": "2026-11-28T14:04:02Z",
    "last_error": "braze-eu is unavailable (5 failures, last: 503)",
    "pushes": {"pending": 0, "deferred": 1, "failed": 0},
    "next_retry_at": "2026-11-28T14:05:02Z",
    "explanation": "Calls are paused after 5 consecutive failures (last: 503); 1 push(es) are queued and will be "
    "retried from 14:05 UTC; nothing was lost.",
}


# --- views ----------------------------------------------------------------------------------


def _present(data: Any, name: str) -> bool:
    return isinstance(data, dict) and name in data


class DestinationList(ActorMixin, generics.ListAPIView):
    serializer_class = DestinationSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Destination.objects.none()
        return selectors.destination_list(actor=self.actor)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "statuses": getattr(self, "_statuses", {})}

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        # The page's health in a fixed number of queries, not one set per destination.
        self._statuses = selectors.destination_statuses(list(page or []))
        return page

    @extend_schema(
        operation_id="destinations_list",
        summary="List destinations",
        description="The destinations of your token's environment, cursor-paginated, each with its `status` "
        "(ok, degraded, failing, unknown, inactive) and circuit `breaker` state. Credentials are never shown: "
        "`credentials` says `stored`, `env` (with `credentials_env`) or `none`." + PERMISSION.format("view"),
        responses={200: DestinationSerializer(many=True), **problem_responses(401, 403, failures=_FAILURES)},
        examples=[OpenApiExample("A destination", value=[EXAMPLE_DESTINATION], response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        operation_id="destinations_create",
        summary="Create a destination",
        description="Configures a downstream tool in your token's environment: `adapter` is `webhook` (JSON "
        "batches to a URL), `file` (CSV/JSONL drops in a local directory), `crm` (data extension upserts) or "
        "`engagement` (user attributes, subscriptions, triggered sends); `config` holds the adapter's settings "
        "(docs/destinations.md lists them). Secrets go in `credentials` (stored encrypted, never shown back) or "
        "`credentials_env` (the name of a `DESTINATION_…` environment variable holding them). **Sandbox** "
        "destinations never reach a real vendor: only `file` and `webhook`, at a loopback URL or a local "
        "directory. Every problem is reported at once (422) with a pointer and a hint." + PERMISSION.format("create"),
        request=DestinationCreateSerializer,
        responses={201: DestinationSerializer, **problem_responses(400, 401, 403, 422, failures=_FAILURES)},
        examples=[
            OpenApiExample(
                "A file drop (sandbox)",
                request_only=True,
                value={"name": "drop", "adapter": "file", "config": {"directory": "/var/drops", "format": "jsonl"}},
            ),
            OpenApiExample(
                "An engagement platform (production)",
                request_only=True,
                value={
                    "name": "braze-eu",
                    "adapter": "engagement",
                    "config": {"base_url": "https://rest.fra-01.braze.eu", "subscription_group_id": "sg-7d1c"},
                    "credentials_env": "DESTINATION_BRAZE_EU",
                },
            ),
            OpenApiExample("Created", response_only=True, status_codes=["201"], value=EXAMPLE_DESTINATION),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = DestinationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        destination = services.destination_create(
            actor=self.actor,
            name=data["name"],
            adapter=data["adapter"],
            config=data.get("config", {}),
            credentials=data.get("credentials"),
            credentials_env=data.get("credentials_env") or None,
            is_active=data.get("is_active", True),
        )
        return Response(DestinationSerializer(destination).data, status=status.HTTP_201_CREATED)


class DestinationDetail(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"PATCH": "destination.update"}

    @extend_schema(
        operation_id="destinations_retrieve",
        summary="Show one destination",
        description="One destination of your token's environment, without its credentials." + PERMISSION.format("view"),
        responses={200: DestinationSerializer, **problem_responses(401, 403, 404, failures=_FAILURES)},
        examples=[OpenApiExample("A destination", value=EXAMPLE_DESTINATION, response_only=True)],
    )
    def get(self, request: Request, destination_id: int) -> Response:
        destination = selectors.destination_get(actor=self.actor, destination_id=destination_id)
        return Response(DestinationSerializer(destination).data)

    @extend_schema(
        operation_id="destinations_update",
        summary="Change a destination",
        description="Change `name`, `config` (merged into the current one; a key set to null is removed), "
        "`credentials` (replace the stored ones; null removes them), `credentials_env` or `is_active`. "
        "The adapter cannot change. A change of config or credentials resets the circuit breaker and retries "
        "deferred pushes at once; switching a destination off holds its pushes until it is on again."
        + PERMISSION.format("update"),
        request=DestinationUpdateSerializer,
        responses={200: DestinationSerializer, **problem_responses(400, 401, 403, 404, 422, failures=_FAILURES)},
        examples=[
            OpenApiExample("Rotate the key", request_only=True, value={"credentials": {"api_key": "…"}}),
            OpenApiExample("Switch off", request_only=True, value={"is_active": False}),
        ],
    )
    def patch(self, request: Request, destination_id: int) -> Response:
        destination = selectors.destination_get(actor=self.actor, destination_id=destination_id)
        serializer = DestinationUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "adapter" in data and data["adapter"] != destination.adapter:
            raise InvalidInput(
                "A destination's adapter cannot change.",
                code="invalid_destination",
                errors=[
                    {
                        "pointer": "/adapter",
                        "code": "adapter_immutable",
                        "message": f"This destination uses the {destination.adapter} adapter.",
                        "hint": "Create a new destination with the other adapter, then switch this one off.",
                    }
                ],
            )
        changes: dict[str, Any] = {}
        for name in ("name", "config", "credentials", "credentials_env", "is_active"):
            if _present(request.data, name):
                changes[name] = data.get(name)
        updated = services.destination_update(actor=self.actor, destination=destination, **changes)
        return Response(DestinationSerializer(updated).data)


class DestinationTest(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "destination.test"}

    @extend_schema(
        operation_id="destinations_test",
        summary="Test a destination's connection",
        description="Runs the adapter's health check now — a dry call that changes nothing at the vendor (a "
        "token request, an empty upsert, a test file written and removed, a `ping` batch) — and records the "
        "result on the destination. The answer is 200 whether the test passed or not; `ok`, `message` and "
        "`hint` say what to fix. The test runs even while the circuit breaker is open: a pass closes it and "
        "retries the deferred pushes at once. Credentials never appear in the result." + PERMISSION.format("test"),
        request=None,
        responses={200: TestResultSerializer, **problem_responses(401, 403, 404, failures=_FAILURES)},
        examples=[
            OpenApiExample(
                "Failed",
                response_only=True,
                value={
                    "ok": False,
                    "result": "failed",
                    "message": "braze-eu refused the request (401: Invalid API key).",
                    "hint": "braze-eu refused the credentials: send valid ones with PATCH /api/v1/destinations/{id} "
                    "(`credentials`), then POST /api/v1/destinations/{id}/test.",
                    "checks": [{"name": "call", "ok": False, "message": "braze-eu refused the request (401)."}],
                    "latency_ms": 182,
                    "tested_at": "2026-11-28T14:10:00Z",
                    "requeued_pushes": 0,
                    "health": EXAMPLE_HEALTH,
                },
            )
        ],
    )
    def post(self, request: Request, destination_id: int) -> Response:
        destination = selectors.destination_get(actor=self.actor, destination_id=destination_id)
        outcome = services.destination_test(actor=self.actor, destination=destination)
        return Response(TestResultSerializer(outcome.as_dict()).data)


class DestinationHealth(ActorMixin, APIView):
    @extend_schema(
        operation_id="destinations_health",
        summary="A destination's health",
        description="Circuit breaker state (closed, open, half_open) with its consecutive failures and when "
        "calls resume, the last success and failure, and the pushes waiting for it. **degraded** means the "
        "breaker is open or work is deferred: nothing is lost, it is retried from `next_retry_at`. No vendor is "
        "called; use POST …/test for that." + PERMISSION.format("view"),
        responses={200: HealthSerializer, **problem_responses(401, 403, 404, failures=_FAILURES)},
        examples=[OpenApiExample("Degraded", value=EXAMPLE_HEALTH, response_only=True)],
    )
    def get(self, request: Request, destination_id: int) -> Response:
        destination = selectors.destination_get(actor=self.actor, destination_id=destination_id)
        return Response(HealthSerializer(selectors.destination_health(actor=self.actor, destination=destination)).data)


urlpatterns = [
    re_path(r"^destinations/?$", DestinationList.as_view(), name="destination-list"),
    re_path(r"^destinations/(?P<destination_id>[0-9]+)/?$", DestinationDetail.as_view(), name="destination-detail"),
    re_path(r"^destinations/(?P<destination_id>[0-9]+)/test/?$", DestinationTest.as_view(), name="destination-test"),
    re_path(
        r"^destinations/(?P<destination_id>[0-9]+)/health/?$", DestinationHealth.as_view(), name="destination-health"
    ),
]
