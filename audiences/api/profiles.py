"""The profiles and ingestion API: serializers and thin DRF views.

Views validate with a serializer, call one selector or service, and serialize. Bulk
payloads are validated row by row here (field values, unknown fields, duplicates) so
that one answer lists every bad row; what needs the database (unknown profiles) is
checked by the service. A batch is all-or-nothing (see docs/api.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, permissions, serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.models import Channel, ConsentChange, ConsentStatus, LifecycleStage, Profile, Region
from audiences.profiles import selectors, services
from audiences.profiles.errors import (
    MalformedBatch,
    UnknownFields,
    check_batch_size,
    duplicate_row_errors,
    raise_row_errors,
)
from audiences.profiles.pii import mask_pii
from governance import policy
from governance.limits.idempotency import idempotent
from marketerapi.api import ActorMixin, MomentField, MomentFilter, StrictFilterSet, problem_responses
from marketerapi.problems import _HINTS as GENERIC_HINTS
from marketerapi.problems import flatten_validation

# How far in the future a timestamp may lie (clock skew); beyond it, it is a mistake
# that would make every later consent update look stale.
FUTURE_TOLERANCE = timedelta(hours=24)


# --- shared view pieces ---------------------------------------------------------


class PolicyAllows(permissions.BasePermission):
    """Refuse early (403, audited) when the actor may not do the view's action.

    Bulk bodies can be megabytes: a caller without the role learns so before the body
    is read and validated. The service asks the policy engine again; that answer rules.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        action = getattr(view, "policy_actions", {}).get(request.method)
        if action:
            policy.require(view.actor, action)
        return True


_FAILURES = {
    400: "Malformed JSON (`malformed_json`, names the position), unknown fields (`unknown_fields`, "
    "lists them and `allowed_fields`) or a body of the wrong shape (`invalid_request`).",
    401: "No token, an unknown, expired or revoked token (`not_authenticated`, `invalid_token`, "
    "`token_revoked`, `token_expired`).",
    403: "Your roles do not allow this (`permission_denied`); the hint names the roles that do. "
    "The refusal is audited.",
    404: "No such object in your token's environment (`profile_not_found`, `not_found`).",
    405: "Method not allowed on this path (`method_not_allowed`).",
    413: "More rows than `BULK_MAX_ROWS` (10,000) (`batch_too_large`) or a body above 16 MB "
    "(`payload_too_large`); split the batch.",
    415: "The body is not `application/json` (`unsupported_media_type`).",
    422: "Rows with invalid values (`invalid_rows`): every bad row is listed with index, pointer, code, "
    "message and hint; nothing was applied.",
}


# --- row validation ---------------------------------------------------------------


class RowSerializer(serializers.Serializer):
    """One row of a bulk payload; fields it does not declare are errors, not ignored."""

    hints: ClassVar[dict[str, str]] = {}

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        return False, data

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        value: dict[str, Any] = {}
        try:
            value = super().to_internal_value(data)
        except ValidationError as exc:
            errors = dict(exc.detail)  # type: ignore[arg-type]  # a serializer's detail is a dict of field errors
        for name in data:
            if name not in self.fields:
                errors[name] = [ErrorDetail(f"Unknown field {name!r}.", code="unknown_field")]
        if errors:
            raise ValidationError(errors)
        return value

    def _not_in_future(self, value: Any) -> Any:
        if value > timezone.now() + FUTURE_TOLERANCE:
            raise ValidationError("The time lies more than 24 hours in the future.", code="in_future")
        return value

    def hint_for(self, name: str | None, code: str) -> str:
        field = self.fields.get(name) if name else None
        if code == "unknown_field":
            return f"Remove or rename this field; a row may have: {', '.join(self.fields)}."
        if code == "invalid_choice" and field is not None:
            allowed = ", ".join(str(choice) for choice in field.choices)  # type: ignore[attr-defined]  # a ChoiceField
            return f"Use one of: {allowed}" + (", or null to clear it." if field.allow_null else ".")
        if code == "required":
            return f"Add `{name}`; every row needs it."
        if code == "max_length" and field is not None:
            return f"Shorten it to at most {field.max_length} characters."  # type: ignore[attr-defined]  # a CharField
        if name in self.hints and code in ("invalid", "in_future", "null", "blank", "not_a_dict"):
            return self.hints[name]
        return GENERIC_HINTS.get(code, "Fix this value and send the batch again.")


def _json_type(value: Any) -> str:
    """What a decoded JSON value was, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _row_errors(index: int, key: str, detail: Mapping[str, Any], row: RowSerializer) -> list[dict[str, Any]]:
    errors = []
    for name, messages in detail.items():
        path = [key, str(index)] if name == "non_field_errors" else [key, str(index), name]
        for entry in flatten_validation(messages, path):
            entry["hint"] = row.hint_for(None if name == "non_field_errors" else name, entry["code"])
            errors.append({"index": index, **entry})
    return errors


class BatchSerializer(serializers.Serializer):
    """`{"<key>": [rows]}` or a bare JSON array of rows, up to BULK_MAX_ROWS of them.

    Refusals are raised as problems directly: unknown or missing top-level fields and
    non-object rows are 400, more rows than allowed 413, invalid values 422.
    """

    key: ClassVar[str]
    row_class: ClassVar[type[RowSerializer]]

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        return False, data

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        rows = self._rows(data)
        check_batch_size(rows, self.key)
        row = self.row_class()
        validated: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(rows):
            if not isinstance(item, Mapping):
                errors.append(
                    {
                        "index": index,
                        "pointer": f"/{self.key}/{index}",
                        "code": "not_an_object",
                        "message": f"Row {index} is a JSON {_json_type(item)}, not an object.",
                        "hint": f"Send each row as an object with the fields: {', '.join(row.fields)}.",
                    }
                )
                continue
            try:
                validated.append(row.run_validation(item))
            except ValidationError as exc:
                # A row serializer's detail is a dict of field errors.
                errors.extend(_row_errors(index, self.key, exc.detail, row))  # type: ignore[arg-type]
        errors.extend(self.batch_errors(rows))
        raise_row_errors(errors, allowed_fields=list(row.fields))
        return {self.key: validated}

    def _rows(self, data: Any) -> list[Any]:
        if isinstance(data, list):
            return data
        if not isinstance(data, Mapping):
            raise MalformedBatch(f"The body is a JSON {_json_type(data)}; send an object or an array.")
        unknown = [name for name in data if name != self.key]
        if unknown:
            raise UnknownFields(
                f"Unknown top-level field(s): {', '.join(unknown)}; nothing was applied.",
                errors=[
                    {
                        "pointer": f"/{name}",
                        "code": "unknown_field",
                        "message": f"Unknown field {name!r}.",
                        "hint": f"The body has one field, `{self.key}` (or send a bare JSON array of rows).",
                    }
                    for name in unknown
                ],
                allowed_fields=[self.key],
            )
        if self.key not in data:
            raise MalformedBatch(
                f"The body has no `{self.key}`.",
                errors=[
                    {
                        "pointer": f"/{self.key}",
                        "code": "required",
                        "message": f"`{self.key}` is required.",
                        "hint": f'Send {{"{self.key}": [ … ]}} or a bare JSON array of rows.',
                    }
                ],
            )
        rows = data[self.key]
        if not isinstance(rows, list):
            raise MalformedBatch(
                f"`{self.key}` is a JSON {_json_type(rows)}, not an array.",
                errors=[
                    {
                        "pointer": f"/{self.key}",
                        "code": "not_a_list",
                        "message": f"`{self.key}` must be an array of rows.",
                        "hint": "Send a JSON array here, even for a single row.",
                    }
                ],
            )
        return rows

    def batch_errors(self, rows: list[Any]) -> list[dict[str, Any]]:
        return []


def _external_id(row: Any) -> str | None:
    if not isinstance(row, Mapping) or row.get("external_id") in (None, ""):
        return None
    return str(row["external_id"]).strip()


# --- profiles -------------------------------------------------------------------


class ProfileRowSerializer(RowSerializer):
    external_id = serializers.CharField(max_length=255, help_text="Your id of the customer; the upsert key.")
    email = serializers.EmailField(max_length=254, required=False, allow_null=True)
    phone = serializers.RegexField(
        r"^\+?[0-9][0-9 ().-]{2,30}$", max_length=32, required=False, allow_null=True, help_text="e.g. +447700900123"
    )
    push_token = serializers.CharField(
        max_length=255,
        required=False,
        allow_null=True,
        help_text="The device token push notifications go to (APNs or FCM): the push channel's contact point.",
    )
    first_name = serializers.CharField(max_length=100, required=False, allow_null=True, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_null=True, allow_blank=True)
    locale = serializers.RegexField(
        r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$", max_length=16, required=False, allow_null=True, help_text="en_GB"
    )
    country = serializers.RegexField(
        r"^[A-Za-z]{2}$", required=False, allow_null=True, help_text="ISO 3166-1 alpha-2, e.g. GB"
    )
    region = serializers.ChoiceField(Region.choices, required=False, allow_null=True)
    lifecycle_stage = serializers.ChoiceField(LifecycleStage.choices, required=False, allow_null=True)
    attributes = serializers.DictField(
        required=False, help_text="Custom attributes; replaces the stored object as a whole when sent."
    )

    hints = {
        "email": "Send an address like ann@example.com, or null to clear it.",
        "phone": "Send digits with an optional leading +, e.g. +447700900123, or null to clear it.",
        "push_token": "Send the device token your push provider gave the app (up to 255 characters), or null.",
        "locale": "Send a locale like en, en_GB or pt-BR, or null to clear it.",
        "country": "Send a two-letter ISO 3166-1 code like GB or DE, or null to clear it.",
        "attributes": 'Send a JSON object, e.g. {"plan": "pro"}; {} clears all attributes.',
    }

    def validate_country(self, value: str | None) -> str | None:
        return value.upper() if value else value


class ProfileBatchSerializer(BatchSerializer):
    key = "profiles"
    row_class = ProfileRowSerializer
    profiles = ProfileRowSerializer(many=True, help_text="Up to 10,000 profiles, each at most once.")

    def batch_errors(self, rows: list[Any]) -> list[dict[str, Any]]:
        return duplicate_row_errors(rows, key=self.key, field="external_id", identity=_external_id, what="external_id")


class UpsertOutcomeSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    # A response field named like Serializer.errors: DRF reads declared fields first.
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.DictField(), help_text="Always empty on success."
    )


class ConsentStateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(ConsentStatus.choices)
    captured_at = serializers.DateTimeField()


_DATETIME = serializers.DateTimeField()


class ProfileSerializer(serializers.ModelSerializer):
    consent = serializers.SerializerMethodField(help_text="Current consent per channel.")
    pii_masked = serializers.SerializerMethodField(
        help_text="True when email, phone and names are masked (every role but compliance_reviewer)."
    )

    class Meta:
        model = Profile
        fields = ["id", "external_id", *services.PROFILE_FIELDS, "consent", "pii_masked", "created_at", "updated_at"]

    @extend_schema_field(serializers.DictField(child=ConsentStateSerializer()))
    def get_consent(self, profile: Profile) -> dict[str, dict[str, Any]]:
        # Reads the prefetched consents: no query per profile.
        return {
            consent.channel: {"status": consent.status, "captured_at": _DATETIME.to_representation(consent.captured_at)}
            for consent in profile.consents.all()
        }

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_pii_masked(self, profile: Profile) -> bool:
        return not self.context.get("reveal_pii", False)

    def to_representation(self, instance: Profile) -> dict[str, Any]:
        data = super().to_representation(instance)
        if self.context.get("reveal_pii", False):
            return data
        return mask_pii(data, self.context.get("pii_keys", frozenset()))


class ProfileFilter(StrictFilterSet):
    external_id = filters.CharFilter(help_text="Exactly this external_id.")
    email = filters.CharFilter(help_text="Exactly this email address (compliance_reviewer only: personal data).")
    region = filters.ChoiceFilter(choices=Region.choices)
    country = filters.CharFilter(method="filter_country", help_text="Two-letter code, e.g. GB.")
    locale = filters.CharFilter()
    lifecycle_stage = filters.ChoiceFilter(choices=LifecycleStage.choices)
    updated_since = MomentFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Changed at or after this time (ISO 8601)."
    )
    updated_before = MomentFilter(
        field_name="updated_at", lookup_expr="lt", help_text="Changed before this time (ISO 8601)."
    )

    class Meta:
        model = Profile
        fields: ClassVar[list[str]] = []

    def filter_country(self, queryset: Any, name: str, value: str) -> Any:
        return queryset.filter(country=value.upper())


PROFILE_EXAMPLE = {
    "id": 42,
    "external_id": "cust-000123",
    "email": "a***@e***.test",
    "phone": "***23",
    "push_token": None,
    "first_name": "A***",
    "last_name": "E***",
    "locale": "en_GB",
    "country": "GB",
    "region": "UK",
    "lifecycle_stage": "customer",
    "attributes": {"plan": "pro"},
    "consent": {"email": {"status": "granted", "captured_at": "2026-03-01T09:30:00Z"}},
    "pii_masked": True,
    "created_at": "2026-03-01T09:31:02.120000Z",
    "updated_at": "2026-03-04T17:02:45.001000Z",
}

PII_NOTE = (
    "Emails, phones and names are masked (`a***@e***.test`, `***23`, `A***`) for every role except "
    "compliance_reviewer, and so are the custom `attributes` an admin marked as personal data in the attribute "
    "catalogue (their values read `***`); `pii_masked` says which you got. Every unmasked read is audited "
    "(`profile.pii_read`, one audit event per request listing the ids read). Looking profiles up by personal data "
    "(`?email=`) is for compliance reviewers only: other roles get a 403 `pii_lookup_refused` naming the parameter."
)


class ProfileList(ActorMixin, generics.ListAPIView):
    serializer_class = ProfileSerializer
    filterset_class = ProfileFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Profile.objects.none()
        return selectors.profile_list(actor=self.actor)

    @extend_schema(
        operation_id="profiles_list",
        summary="List profiles",
        description=(
            "The profiles of your token's environment, newest first, cursor-paginated (`limit` up to 1,000; "
            "follow `next`). Filter by exact `external_id`, `email`, `region`, `country`, `locale`, "
            "`lifecycle_stage`, and by `updated_since` / `updated_before` (ISO 8601) to fetch what changed. "
            "An unknown query parameter is a 400, so a typo never returns everything.\n\n"
            + PII_NOTE
            + "\n\n**Permission:** any role (`profile.view`)."
        ),
        responses={200: ProfileSerializer(many=True), **problem_responses(400, 401, 403, failures=_FAILURES)},
        examples=[OpenApiExample("A page", value=PROFILE_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        selectors.profile_lookup_check(actor=self.actor, params=request.query_params.keys())
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        decision = selectors.profile_pii_decision(actor=self.actor)
        if decision.allowed:
            services.profile_pii_read_record(actor=self.actor, profiles=page or [], decision=decision)
        keys = frozenset() if decision.allowed else selectors.pii_attribute_keys(environment=self.actor.environment)
        serializer = self.get_serializer(
            page,
            many=True,
            context={**self.get_serializer_context(), "reveal_pii": decision.allowed, "pii_keys": keys},
        )
        return self.get_paginated_response(serializer.data)


PROFILE_ID = OpenApiParameter("profile_id", int, OpenApiParameter.PATH, description="The profile's `id`.")


class ProfileDetail(ActorMixin, APIView):
    @extend_schema(
        operation_id="profiles_retrieve",
        summary="Get one profile",
        description=(
            "One profile by its `id` (to find it by your own id, list with `?external_id=`). A profile of "
            "another environment than your token's is a 404.\n\n"
            + PII_NOTE
            + "\n\n**Permission:** any role (`profile.view`)."
        ),
        parameters=[PROFILE_ID],
        responses={200: ProfileSerializer, **problem_responses(401, 403, 404, failures=_FAILURES)},
        examples=[OpenApiExample("A profile (masked)", value=PROFILE_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, profile_id: str) -> Response:
        profile = selectors.profile_get(actor=self.actor, profile_id=int(profile_id))
        decision = selectors.profile_pii_decision(actor=self.actor)
        if decision.allowed:
            services.profile_pii_read_record(actor=self.actor, profiles=[profile], decision=decision)
        keys = frozenset() if decision.allowed else selectors.pii_attribute_keys(environment=self.actor.environment)
        return Response(ProfileSerializer(profile, context={"reveal_pii": decision.allowed, "pii_keys": keys}).data)


ALL_OR_NOTHING = (
    "**A batch is all-or-nothing:** if any row is invalid, nothing is written and the answer is a "
    "problem listing every bad row as `{index, pointer, code, message, hint}` (pointers read "
    "`/<key>/<index>/<field>`, also for a bare array). Fix the rows and send the whole batch again."
)


class ProfileBulkUpsert(ActorMixin, APIView):
    permission_classes = [permissions.IsAuthenticated, PolicyAllows]
    policy_actions: ClassVar[dict[str, str]] = {"POST": "profile.ingest"}
    # 20 a minute per token (×2 for developers and admins); see docs/limits.md.
    rate_class = "bulk"

    @extend_schema(
        operation_id="profiles_bulk_upsert",
        summary="Upsert profiles in bulk",
        description=(
            'Create or update up to 10,000 profiles by `external_id`. Send `{"profiles": [...]}` or a bare '
            "JSON array. A field a row leaves out keeps its stored value; `null` clears it. `attributes`, "
            "when sent, **replaces** the stored object as a whole (no deep merge), so a resend is idempotent. "
            "A profile whose sent fields all equal the stored ones counts `unchanged` and keeps its "
            "`updated_at`. Each `external_id` may appear once per batch.\n\n"
            + ALL_OR_NOTHING
            + "\n\n**Permission:** developer or admin (`profile.ingest`). One audit event per batch with the "
            "counts; a `profiles.ingested` domain event when anything changed."
        ),
        request=ProfileBatchSerializer,
        responses={
            200: UpsertOutcomeSerializer,
            **problem_responses(400, 401, 403, 405, 413, 415, 422, failures=_FAILURES),
        },
        examples=[
            OpenApiExample(
                "Two profiles",
                request_only=True,
                value={
                    "profiles": [
                        {
                            "external_id": "cust-000123",
                            "email": "ann@example.test",
                            "first_name": "Ann",
                            "country": "GB",
                            "region": "UK",
                            "locale": "en_GB",
                            "lifecycle_stage": "customer",
                            "attributes": {"plan": "pro"},
                        },
                        {"external_id": "cust-000124", "lifecycle_stage": "lapsed"},
                    ]
                },
            ),
            OpenApiExample(
                "Applied", response_only=True, value={"created": 1, "updated": 1, "unchanged": 0, "errors": []}
            ),
            OpenApiExample(
                "A bad row refuses the batch",
                response_only=True,
                status_codes=["422"],
                value={
                    "type": "https://marketerapi.dev/errors/invalid-rows",
                    "title": "Some rows of the batch are not valid; nothing was applied",
                    "status": 422,
                    "detail": "1 problem(s) in 1 row(s); nothing in this batch was applied.",
                    "code": "invalid_rows",
                    "hint": "Fix every row listed in `errors` (each has its own hint) and send the whole batch again.",
                    "errors": [
                        {
                            "index": 3,
                            "pointer": "/profiles/3/region",
                            "code": "invalid_choice",
                            "message": '"EUROPE" is not a valid choice.',
                            "hint": "Use one of: EU, UK, NA, LATAM, APAC, MEA, or null to clear it.",
                        }
                    ],
                    "request_id": "req_5f0c…",
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        batch = ProfileBatchSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        outcome = services.profiles_bulk_upsert(actor=self.actor, rows=batch.validated_data["profiles"])
        return Response({**outcome.as_dict(), "errors": []})


# --- profile events -------------------------------------------------------------


class ProfileEventRowSerializer(RowSerializer):
    external_id = serializers.CharField(max_length=255, help_text="The profile's external_id; it must exist.")
    type = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=64, help_text="What the customer did, e.g. cart_abandoned."
    )
    occurred_at = MomentField(help_text="ISO 8601; without an offset, UTC is assumed.")
    properties = serializers.DictField(required=False, help_text="Anything about the event, as a JSON object.")
    event_id = serializers.CharField(
        max_length=128, required=False, allow_null=True, help_text="Your id of the event: a resend is stored once."
    )

    hints = {
        "type": "Use letters, digits, _ . : or -, e.g. cart_abandoned or purchase.",
        "occurred_at": "Send when it happened in ISO 8601, e.g. 2026-11-01T10:00:00Z; not more than 24 h ahead.",
        "properties": 'Send a JSON object, e.g. {"value": 59.9}.',
    }

    def validate_occurred_at(self, value: Any) -> Any:
        return self._not_in_future(value)


class ProfileEventBatchSerializer(BatchSerializer):
    key = "events"
    row_class = ProfileEventRowSerializer
    events = ProfileEventRowSerializer(many=True, help_text="Up to 10,000 events.")


class EventIngestOutcomeSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicate = serializers.IntegerField(help_text="Events whose event_id was already stored for that profile.")
    # A response field named like Serializer.errors: DRF reads declared fields first.
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.DictField(), help_text="Always empty on success."
    )


class ProfileEventBulkIngest(ActorMixin, APIView):
    permission_classes = [permissions.IsAuthenticated, PolicyAllows]
    policy_actions: ClassVar[dict[str, str]] = {"POST": "profile_event.ingest"}
    # 20 a minute per token (×2 for developers and admins); see docs/limits.md.
    rate_class = "bulk"

    @extend_schema(
        operation_id="profile_events_bulk_ingest",
        summary="Ingest profile events in bulk",
        description=(
            "Store up to 10,000 behavioural events — what customers did (`cart_abandoned`, `purchase`) — "
            'for audience rules. Send `{"events": [...]}` or a bare JSON array. Each event names a profile by '
            "`external_id`; an unknown one is a row error (`profile_not_found`: upsert the profile first). "
            "With an `event_id`, an event is stored once per profile: a resend counts `duplicate`, not an "
            "error, so retrying a batch is safe.\n\n"
            + ALL_OR_NOTHING
            + "\n\n**Permission:** developer or admin (`profile_event.ingest`). One audit event per batch."
        ),
        request=ProfileEventBatchSerializer,
        responses={
            200: EventIngestOutcomeSerializer,
            **problem_responses(400, 401, 403, 405, 413, 415, 422, failures=_FAILURES),
        },
        examples=[
            OpenApiExample(
                "One event",
                request_only=True,
                value={
                    "events": [
                        {
                            "external_id": "cust-000123",
                            "type": "cart_abandoned",
                            "occurred_at": "2026-03-04T17:02:00Z",
                            "properties": {"cart_value": 59.9, "currency": "EUR"},
                            "event_id": "evt-8812",
                        }
                    ]
                },
            ),
            OpenApiExample("Stored", response_only=True, value={"created": 1, "duplicate": 0, "errors": []}),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        batch = ProfileEventBatchSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        outcome = services.profile_events_ingest(actor=self.actor, events=batch.validated_data["events"])
        return Response({**outcome.as_dict(), "errors": []})


# --- consent --------------------------------------------------------------------


class ConsentUpdateRowSerializer(RowSerializer):
    external_id = serializers.CharField(max_length=255, help_text="The profile's external_id; it must exist.")
    channel = serializers.ChoiceField(Channel.choices)
    status = serializers.ChoiceField(ConsentStatus.choices)
    # A row field named like Field.source: DRF reads declared fields first.
    source = serializers.CharField(  # type: ignore[assignment]
        max_length=64, help_text="Where consent was captured, e.g. preference_center."
    )
    captured_at = MomentField(help_text="When the customer gave or withdrew consent (ISO 8601).")

    hints = {
        "captured_at": "Send when the customer decided, in ISO 8601, e.g. 2026-11-01T10:00:00Z; "
        "not more than 24 h ahead.",
        "source": "Name where consent was captured, e.g. signup_form or preference_center.",
    }

    def validate_captured_at(self, value: Any) -> Any:
        return self._not_in_future(value)


class ConsentSyncSerializer(BatchSerializer):
    key = "updates"
    row_class = ConsentUpdateRowSerializer
    updates = ConsentUpdateRowSerializer(many=True, help_text="Up to 10,000 updates.")


class ConsentSyncOutcomeSerializer(serializers.Serializer):
    updated = serializers.IntegerField(help_text="Updates applied (each wrote a consent ledger row).")
    unchanged = serializers.IntegerField(help_text="Same status and captured_at as stored.")
    stale = serializers.IntegerField(help_text="Older than what is stored, or than another update in the batch.")
    removed_from_audiences = serializers.IntegerField(
        help_text="Memberships of live audience versions removed because consent for their channel was withdrawn "
        "(pushed to the connected destinations at once)."
    )
    # A response field named like Serializer.errors: DRF reads declared fields first.
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.DictField(), help_text="Always empty on success."
    )


class ConsentSync(ActorMixin, APIView):
    permission_classes = [permissions.IsAuthenticated, PolicyAllows]
    policy_actions: ClassVar[dict[str, str]] = {"POST": "consent.sync"}
    # 20 a minute per token (×2 for developers and admins); see docs/limits.md.
    rate_class = "bulk"

    @extend_schema(
        operation_id="consent_sync",
        summary="Sync consent in bulk",
        description=(
            "Apply up to 10,000 consent updates (`channel`: email, sms, push, ads; `status`: granted, denied, "
            'unknown). Send `{"updates": [...]}` or a bare JSON array.\n\n'
            "- **Newest wins.** An update with an older `captured_at` than the stored one is ignored and "
            "counted `stale`; of several updates for one profile and channel in a batch, the newest wins and "
            "the others count `stale` (on equal times, the later row).\n"
            "- **Idempotent.** The same `captured_at` and status as stored count `unchanged`: sending a batch "
            "twice changes nothing the second time.\n"
            "- Every applied update writes a row in the profile's consent ledger "
            "(`GET /profiles/{id}/consent-history`) and each changed profile gets one `consent.updated` "
            "domain event (`GET /events/`, webhooks).\n\n"
            + ALL_OR_NOTHING
            + " An unknown `external_id` is a row error (`profile_not_found`).\n\n"
            "**Permission:** developer or admin (`consent.sync`). One audit event per batch with the counts."
        ),
        request=ConsentSyncSerializer,
        responses={
            200: ConsentSyncOutcomeSerializer,
            **problem_responses(400, 401, 403, 405, 413, 415, 422, failures=_FAILURES),
        },
        examples=[
            OpenApiExample(
                "An opt-out",
                request_only=True,
                value={
                    "updates": [
                        {
                            "external_id": "cust-000123",
                            "channel": "email",
                            "status": "denied",
                            "source": "preference_center",
                            "captured_at": "2026-03-04T17:05:00Z",
                        }
                    ]
                },
            ),
            OpenApiExample(
                "Applied", response_only=True, value={"updated": 1, "unchanged": 0, "stale": 0, "errors": []}
            ),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        batch = ConsentSyncSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        outcome = services.consent_sync(actor=self.actor, updates=batch.validated_data["updates"])
        return Response({**outcome.as_dict(), "errors": []})


class ConsentChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsentChange
        fields = ["id", "channel", "status", "previous_status", "source", "captured_at", "recorded_at", "request_id"]


class ConsentHistory(ActorMixin, generics.ListAPIView):
    serializer_class = ConsentChangeSerializer
    filter_backends = []

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return ConsentChange.objects.none()
        return selectors.profile_consent_history(actor=self.actor, profile_id=int(self.kwargs["profile_id"]))

    @extend_schema(
        operation_id="profiles_consent_history",
        summary="A profile's consent ledger",
        description=(
            "Every applied consent change of one profile, newest first, cursor-paginated: channel, status, "
            "previous status, source, when the customer decided (`captured_at`), when it was recorded and "
            "the request that recorded it. Stale and unchanged updates leave no row.\n\n"
            "**Permission:** any role (`consent.view`). A profile of another environment is a 404."
        ),
        parameters=[PROFILE_ID],
        responses={200: ConsentChangeSerializer(many=True), **problem_responses(401, 403, 404, failures=_FAILURES)},
        examples=[
            OpenApiExample(
                "An opt-out",
                response_only=True,
                value={
                    "id": 981,
                    "channel": "email",
                    "status": "denied",
                    "previous_status": "granted",
                    "source": "preference_center",
                    "captured_at": "2026-03-04T17:05:00Z",
                    "recorded_at": "2026-03-04T17:05:03.512000Z",
                    "request_id": "req_5f0c…",
                },
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)
