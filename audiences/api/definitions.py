"""The audiences API: definitions, preview, validate, share, transfer, promote, copy.

Thin doors (docs/audiences.md tells the whole story to marketers): a strict serializer
checks the shape (unknown fields 400, bad values 422), one selector reads, one service
writes, and the result is serialized. Preview and validate declare the `preview` rate
class. Samples are masked for every role but compliance_reviewer; an unmasked sample is
audited (`profile.pii_read`) like the profiles API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.profiles import PolicyAllows
from audiences.definitions import selectors as audience_selectors
from audiences.definitions import services as audience_services
from audiences.definitions.checks import every_problem
from audiences.definitions.filters import AudienceFilter
from audiences.models import Audience, Channel, Profile
from governance.access.objectperms import SHARE_LEVELS
from governance.actors import Actor
from governance.approvals import approval_brief
from governance.limits.idempotency import idempotent
from marketerapi.api import ActorMixin, StrictSerializer, problem_responses
from marketerapi.problems import InvalidInput, MalformedRequest, flatten_validation

# --- strict input ----------------------------------------------------------------------------


def validated(serializer_class: type[serializers.Serializer], data: Any, *, partial: bool = False) -> dict[str, Any]:
    """A JSON object checked by `serializer_class`: not an object 400, unknown fields 400,
    bad values 422 `invalid_input` with a pointer and a hint for each."""
    if not isinstance(data, Mapping):
        raise MalformedRequest(
            "The body must be a JSON object.",
            errors=[
                {
                    "pointer": "",
                    "code": "not_an_object",
                    "message": "The body is not a JSON object.",
                    "hint": 'Send a JSON object, e.g. {"name": …}.',
                }
            ],
        )
    serializer = serializer_class(data=data, partial=partial)
    if not serializer.is_valid():
        errors = flatten_validation(serializer.errors)
        raise InvalidInput(f"{len(errors)} value(s) are not valid; nothing was applied.", errors=errors)
    return dict(serializer.validated_data)


def validated_with_rules(
    serializer_class: type[serializers.Serializer],
    data: Any,
    *,
    actor: Actor,
    audience: Audience | None = None,
    partial: bool = False,
) -> dict[str, Any]:
    """`validated`, for a body with `rules`: when another value is refused (a missing
    channel, say), the rules' own problems are listed in the same 422 `invalid_input`, so
    that one answer names every problem (docs/audiences.md, "Mistakes")."""
    try:
        return validated(serializer_class, data, partial=partial)
    except InvalidInput as error:
        if isinstance(data, Mapping) and "rules" in data:
            found = audience_selectors.rules_problems(actor=actor, rules=data["rules"], audience=audience)
            raise every_problem(error.errors, found) from None
        raise


# --- representations --------------------------------------------------------------------------


class LiveVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()


class AudienceSerializer(serializers.ModelSerializer):
    environment = serializers.CharField(source="environment.slug", read_only=True)
    owner_team = serializers.CharField(source="owner_team.name", read_only=True, help_text="The team that owns it.")
    state = serializers.CharField(read_only=True, help_text="draft, published or archived.")
    channel = serializers.CharField(read_only=True, help_text="email, sms, push or ads.")
    rules = serializers.JSONField(read_only=True, help_text="The rules (docs/audiences.md).")
    live_version = serializers.SerializerMethodField(help_text="The version destinations use now, or null.")
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = Audience
        fields: ClassVar[list[str]] = [
            "id",
            "name",
            "environment",
            "owner_team",
            "channel",
            "purpose",
            "description",
            "rules",
            "state",
            "live_version",
            "created_by",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(LiveVersionSerializer(allow_null=True))
    def get_live_version(self, audience: Audience) -> dict[str, int] | None:
        version = audience.live_version
        return {"id": version.pk, "number": version.number} if version is not None else None


class ShareEntrySerializer(serializers.Serializer):
    team = serializers.CharField(required=False, help_text="A team the audience is shared with…")
    user = serializers.CharField(required=False, help_text="…or a person.")
    level = serializers.CharField(help_text="view or change.")


class AudienceDetailSerializer(AudienceSerializer):
    shares = serializers.SerializerMethodField(help_text="Teams and people it is shared with, and the level.")

    class Meta(AudienceSerializer.Meta):
        fields: ClassVar[list[str]] = [*AudienceSerializer.Meta.fields, "shares"]

    @extend_schema_field(ShareEntrySerializer(many=True))
    def get_shares(self, audience: Audience) -> list[dict[str, str]]:
        return audience_selectors.audience_shares(audience)


RULES_HELP = (
    'The rules as JSON, e.g. {"all": [{"attr": "region", "op": "in", "value": ["EU"]}, '
    '{"consent": "email", "is": true}]}. See docs/audiences.md for every operator.'
)


class AudienceCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=120, help_text="Unique in the environment.")
    owner_team = serializers.CharField(
        required=False,
        max_length=150,
        help_text="A team you belong to (admins: any team). Left out: your only team.",
    )
    channel = serializers.ChoiceField(Channel.choices)
    purpose = serializers.CharField(max_length=200, help_text="Why the audience exists, e.g. winback.")
    description = serializers.CharField(max_length=10_000, help_text="Who is in it, in plain words.")
    rules = serializers.JSONField(help_text=RULES_HELP)


class AudienceUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=120, required=False)
    owner_team = serializers.CharField(
        max_length=150,
        required=False,
        help_text="Only the current owner team is accepted here; hand it to another team with POST …/transfer.",
    )
    channel = serializers.ChoiceField(Channel.choices, required=False)
    purpose = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=10_000, required=False)
    rules = serializers.JSONField(required=False, help_text=RULES_HELP)


class PreviewRequestSerializer(StrictSerializer):
    rules = serializers.JSONField(help_text=RULES_HELP)
    channel = serializers.ChoiceField(Channel.choices)


class WaterfallStepSerializer(serializers.Serializer):
    step = serializers.CharField(
        help_text="matching, no address, without consent, suppressed, regional restriction, reachable."
    )
    remaining = serializers.IntegerField()
    removed = serializers.IntegerField()


class BreakdownsSerializer(serializers.Serializer):
    region = serializers.DictField(child=serializers.IntegerField())
    lifecycle_stage = serializers.DictField(child=serializers.IntegerField())
    consent = serializers.DictField(child=serializers.IntegerField(), help_text="Consent status for the channel.")


class SampleProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = Profile
        fields: ClassVar[list[str]] = list(audience_selectors.SAMPLE_FIELDS)


class PreviewWarningSerializer(serializers.Serializer):
    code = serializers.CharField()
    pointer = serializers.CharField(
        required=False, help_text="Where in the request, for warnings about one condition (e.g. /rules/all/0/attr)."
    )
    message = serializers.CharField()
    hint = serializers.CharField()


class PreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Profiles matching the rules.")
    reachable = serializers.IntegerField(
        help_text="Reach: what is left after addresses, consent, suppressions, restrictions."
    )
    waterfall = WaterfallStepSerializer(many=True)
    breakdowns = BreakdownsSerializer(help_text="Of the matching profiles.")
    sample = SampleProfileSerializer(many=True, help_text="Up to 10 reachable profiles, masked unless you may see PII.")
    pii_masked = serializers.BooleanField()
    warnings = PreviewWarningSerializer(many=True)


class ValidationCheckSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="schema, required_metadata, known_names, address, consent, regional_restrictions, "
        "suppression_overlap, size."
    )
    passed = serializers.BooleanField()
    status = serializers.CharField(help_text="passed, warning, failed or skipped.")
    message = serializers.CharField()
    hint = serializers.CharField(allow_blank=True)
    count = serializers.IntegerField(required=False, help_text="How many profiles the check is about.")
    # A response field named like Serializer.errors: DRF reads declared fields first.
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.DictField(),
        required=False,
        help_text="schema: each problem with pointer, code, hint; known_names: each unknown name, likewise.",
    )
    missing = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="required_metadata: the fields left empty."
    )
    restrictions = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="regional_restrictions: each that applies, with how many it removes (`removes`).",
    )


class ValidateSerializer(serializers.Serializer):
    valid = serializers.BooleanField(help_text="True when no check failed or was skipped.")
    checks = ValidationCheckSerializer(many=True)


class ShareRequestSerializer(StrictSerializer):
    team = serializers.CharField(required=False, max_length=150)
    user = serializers.CharField(required=False, max_length=150)
    level = serializers.ChoiceField(list(SHARE_LEVELS), help_text="view or change.")


class TransferRequestSerializer(StrictSerializer):
    team = serializers.CharField(max_length=150, help_text="The team that will own the audience.")


class UnshareRequestSerializer(StrictSerializer):
    team = serializers.CharField(required=False, max_length=150)
    user = serializers.CharField(required=False, max_length=150)


class SharesSerializer(serializers.Serializer):
    audience = serializers.IntegerField()
    shares = ShareEntrySerializer(many=True)


class PromoteRequestSerializer(StrictSerializer):
    environment = serializers.CharField(max_length=32, help_text="The target environment's slug, e.g. production.")
    name = serializers.CharField(required=False, max_length=120, help_text="Name of the copy; default: the same.")
    owner_team = serializers.CharField(required=False, max_length=150, help_text="Default: the same team.")


class UnmappedSerializer(serializers.Serializer):
    pointer = serializers.CharField()
    audience_id = serializers.IntegerField()
    name = serializers.CharField(allow_null=True)
    hint = serializers.CharField()


class PromotionSerializer(serializers.Serializer):
    audience = AudienceSerializer()
    unmapped = UnmappedSerializer(many=True)
    warnings = PreviewWarningSerializer(many=True)


class CopyRequestSerializer(StrictSerializer):
    name = serializers.CharField(
        required=False, max_length=120, help_text="Name of the copy; default: the name with “(copy)”."
    )
    team = serializers.CharField(
        required=False, max_length=150, help_text="One of your teams; default: your only team."
    )


class CopySerializer(serializers.Serializer):
    audience = AudienceSerializer()
    warnings = PreviewWarningSerializer(many=True)


class ApprovalInnerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField()
    required = serializers.IntegerField()  # type: ignore[assignment]  # a response field named like Field.required
    received = serializers.IntegerField()
    summary = serializers.CharField()
    expires_at = serializers.DateTimeField()
    url = serializers.CharField()


class ApprovalFiledSerializer(serializers.Serializer):
    approval = ApprovalInnerSerializer()
    detail = serializers.CharField()
    hint = serializers.CharField()


# --- failure modes and examples ------------------------------------------------------------------

_FAILURES = {
    400: "Malformed JSON (`malformed_json`), a body that is not an object (`invalid_request`), unknown fields "
    "(`unknown_fields`, with `allowed_fields`) or an unknown query parameter (`unknown_query_parameter`).",
    401: "No token, or an unknown, expired or revoked one (`not_authenticated`, `invalid_token`, …).",
    403: "Your roles do not allow this (`permission_denied`; the hint names the roles that do), or the audience "
    "belongs to another team and was not shared with you (`permission_denied`, the detail names the owning team), "
    "or the team is not yours (`not_team_member`). Refusals of changes are audited.",
    404: "No such audience in your token's environment (`audience_not_found`): audiences of other environments are "
    "never shown.",
    409: "The name is taken in the environment (`audience_name_taken`), the audience is archived "
    "(`audience_archived`) or in use (`audience_in_use`, with `used_by`), or an approval is already open "
    "(`approval_pending`).",
    422: "Bad values (`invalid_input`, each with pointer and hint) or invalid rules (`invalid_rules`: every problem "
    "at once, pointers such as /rules/all/2/attr, with did-you-mean hints). Both at once is one `invalid_input` "
    "listing every problem, the rules' among them.",
    429: "Too many requests in the rate class (`rate_limited`; see Retry-After).",
}


AUDIENCE_EXAMPLE = {
    "id": 42,
    "name": "Lapsed EU customers",
    "environment": "sandbox",
    "owner_team": "growth",
    "channel": "email",
    "purpose": "winback",
    "description": "EU customers who lapsed and may hear from us by email.",
    "rules": {
        "all": [
            {"attr": "region", "op": "in", "value": ["EU"]},
            {"attr": "lifecycle_stage", "op": "eq", "value": "lapsed"},
            {"consent": "email", "is": True},
        ]
    },
    "state": "draft",
    "live_version": None,
    "created_by": "ann",
    "created_at": "2026-03-04T17:05:03Z",
    "updated_at": "2026-03-04T17:05:03Z",
}
INVALID_RULES_EXAMPLE = {
    "type": "https://marketerapi.dev/errors/invalid-rules",
    "title": "The audience rules are not valid",
    "status": 422,
    "detail": "The rules have 2 problems; nothing was saved or computed.",
    "code": "invalid_rules",
    "hint": "Fix every problem listed in `errors`: each has a JSON pointer into the request and its own hint.",
    "errors": [
        {
            "pointer": "/rules/all/0/attr",
            "code": "unknown_attribute",
            "message": "unknown attribute 'regoin' — did you mean 'region'?",
            "hint": "Use one of: external_id, email, phone, …, attributes.<key>.",
        },
        {
            "pointer": "/rules/all/1/in_audience",
            "code": "audience_not_found",
            "message": "There is no audience 77 in this environment.",
            "hint": "Check the id; audiences of another environment cannot be referenced.",
        },
    ],
    "request_id": "req_5f0c…",
}
PREVIEW_EXAMPLE = {
    "count": 12,
    "reachable": 5,
    "waterfall": [
        {"step": "matching", "remaining": 12, "removed": 0},
        {"step": "no address", "remaining": 11, "removed": 1},
        {"step": "without consent", "remaining": 8, "removed": 3},
        {"step": "suppressed", "remaining": 6, "removed": 2},
        {"step": "regional restriction", "remaining": 5, "removed": 1},
        {"step": "reachable", "remaining": 5, "removed": 0},
    ],
    "breakdowns": {
        "region": {"EU": 10, "UK": 2},
        "lifecycle_stage": {"customer": 12},
        "consent": {"granted": 9, "denied": 1, "unknown": 2},
    },
    "sample": [
        {
            "id": 7,
            "external_id": "eu-2",
            "email": "e***@e***.test",
            "phone": "***23",
            "first_name": "A***",
            "last_name": "E***",
            "locale": "en_GB",
            "country": "GB",
            "region": "EU",
            "lifecycle_stage": "customer",
        }
    ],
    "pii_masked": True,
    "warnings": [
        {
            "code": "no_address",
            "message": "1 of 12 profiles have no email address; they will not be members.",
            "hint": 'Add the rule {"attr": "email", "op": "is_null", "value": false} to see exactly who you reach, '
            "or send their email addresses with POST /api/v1/profiles/bulk.",
        },
        {
            "code": "consent_missing",
            "message": "3 of 12 profiles lack email consent; they will not be members.",
            "hint": 'Add the rule {"consent": "email", "is": true} to see exactly who you reach.',
        },
    ],
}
APPROVAL_EXAMPLE = {
    "approval": {
        "id": 17,
        "state": "pending",
        "required": 2,
        "received": 0,
        "summary": "Archive the published audience 'Lapsed EU customers'",
        "expires_at": "2026-03-07T17:05:03Z",
        "url": "/api/v1/approvals/17",
    },
    "detail": "In production, deleting or archiving a published audience needs 2 approval(s).",
    "hint": "It runs once an approver and a developer or admin approve it, within 72 hours; follow it at the url.",
}

# The preview budget's refusals (audiences/definitions/budget.py, docs/limits.md).
_BUDGET = {
    422: "Bad values or invalid rules (`invalid_rules`, every problem with its pointer and hint), or the preview "
    "budget: rules too expensive to preview (`preview_too_expensive`, with `cost` and `max_cost`) or a preview "
    "stopped by the statement timeout (`preview_timed_out`): split the rule into smaller audiences or remove some "
    "`contains` conditions.",
    429: "Too many preview requests in 60 seconds (`rate_limited`), or too many previews running at once for you or "
    "in the environment (`preview_busy`): wait for Retry-After (a few seconds) and try again.",
}

PREVIEW_NOTE = (
    "The answer: `count` (profiles matching the rules), `reachable` (reach for the channel), the reach `waterfall` "
    "(matching → no address for the channel (`no address`: email needs an email address, sms a phone number, push a "
    "push token, ads an email address or phone number) → without consent for the channel → suppressed → regional "
    "restriction → reachable, each step with `remaining` and `removed`), `breakdowns` of the matching profiles by "
    "region, lifecycle stage and consent, a `sample` of up to 10 reachable profiles and `warnings` (a custom "
    "attribute, event type or event property the environment's data never had is a warning with a `pointer` and a "
    "did-you-mean: `unknown_custom_attribute`, `unknown_event_type`, `unknown_event_property`). Emails, phones "
    "and names in the sample are masked for every role except compliance_reviewer (`pii_masked` says which you "
    "got); an unmasked sample is audited (`profile.pii_read`). Rate class `preview` (60 a minute)."
)
AUDIENCE_ID = OpenApiParameter("audience_id", int, OpenApiParameter.PATH, description="The audience's `id`.")


def _audience_response(audience: Audience, *, status_code: int = 200, detail: bool = True) -> Response:
    serializer = AudienceDetailSerializer if detail else AudienceSerializer
    return Response(serializer(audience).data, status=status_code)


def preview_response(actor: Actor, result: dict[str, Any]) -> dict[str, Any]:
    """The preview as the caller may see it (masked sample, audited PII reads): the same
    function the portal shows its preview panel through."""
    return audience_selectors.preview_as_seen(actor=actor, result=result)


# --- audiences ---------------------------------------------------------------------------------------


class AudienceListCreate(ActorMixin, generics.ListAPIView):
    serializer_class = AudienceSerializer
    filterset_class = AudienceFilter
    permission_classes = [permissions.IsAuthenticated, PolicyAllows]
    policy_actions: ClassVar[dict[str, str]] = {"POST": "audience.create"}

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Audience.objects.none()
        return audience_selectors.audience_list(actor=self.actor)

    @extend_schema(
        operation_id="audiences_list",
        summary="List audiences",
        description=(
            "The audiences of your token's environment, newest first, cursor-paginated (`limit` up to 1,000; follow "
            "`next`). Filter by `team` (the owning team), `state` (draft, published, archived), `channel` and `q` "
            "(part of the name). Everyone in an environment may see its audiences. An unknown query parameter is a "
            "400.\n\n**Permission:** any role (`audience.view`)."
        ),
        responses={200: AudienceSerializer(many=True), **problem_responses(400, 401, 403, failures=_FAILURES)},
        examples=[OpenApiExample("An audience", value=AUDIENCE_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        operation_id="audiences_create",
        summary="Create an audience",
        description=(
            "Create a **draft** audience: `name` (unique in the environment), `owner_team` (a team you belong to; "
            "admins may pick any; left out, your only team), `channel` (email, sms, push, ads), `purpose`, "
            "`description` and `rules`. The rules are checked at once and **every** problem is reported with a "
            "pointer such as `/rules/all/2/attr` and a hint (unknown attributes with did-you-mean, operators that do "
            "not fit the type, an `in_audience` of another environment or that is not published, a cycle). "
            "Nothing is saved when anything is wrong.\n\n"
            "**Permission:** campaign_operator or admin, developers in a sandbox (`audience.create`). Audited "
            "(`audience.create`)."
        ),
        request=AudienceCreateSerializer,
        responses={201: AudienceDetailSerializer, **problem_responses(400, 401, 403, 409, 422, failures=_FAILURES)},
        examples=[
            OpenApiExample(
                "Request",
                request_only=True,
                value={
                    k: AUDIENCE_EXAMPLE[k] for k in ("name", "owner_team", "channel", "purpose", "description", "rules")
                },
            ),
            OpenApiExample(
                "Created", response_only=True, status_codes=["201"], value={**AUDIENCE_EXAMPLE, "shares": []}
            ),
            OpenApiExample("Invalid rules", response_only=True, status_codes=["422"], value=INVALID_RULES_EXAMPLE),
        ],
    )
    def post(self, request: Request) -> Response:
        data = validated_with_rules(AudienceCreateSerializer, request.data, actor=self.actor)
        audience = audience_services.audience_create(actor=self.actor, **data)
        response = _audience_response(audience, status_code=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/audiences/{audience.pk}"
        return response


class AudienceDetail(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"PATCH": "audience.edit", "DELETE": "audience.delete"}

    def _audience(self, audience_id: str) -> Audience:
        return audience_selectors.audience_get(actor=self.actor, audience_id=int(audience_id))

    @extend_schema(
        operation_id="audiences_retrieve",
        summary="Get an audience",
        description=(
            "One audience with its rules, state, live version and `shares` (teams and people it is shared with, "
            "`view` or `change`). An audience of another environment is a 404.\n\n"
            "**Permission:** any role (`audience.view`)."
        ),
        parameters=[AUDIENCE_ID],
        responses={200: AudienceDetailSerializer, **problem_responses(401, 403, 404, failures=_FAILURES)},
        examples=[OpenApiExample("A draft", value={**AUDIENCE_EXAMPLE, "shares": []}, response_only=True)],
    )
    def get(self, request: Request, audience_id: str) -> Response:
        return _audience_response(self._audience(audience_id))

    @extend_schema(
        operation_id="audiences_update",
        summary="Edit an audience",
        description=(
            "Change any of `name`, `channel`, `purpose`, `description`, `rules`; what you leave out "
            "stays. Rules are checked like on create (422 `invalid_rules` with every problem). A published "
            "audience keeps its live version until it is published again. An archived audience cannot change "
            "(409). `owner_team` may be sent only unchanged: a different team is a 400 `owner_team_read_only` "
            "(audited as a denied `audience.transfer`) whose hint names `POST /api/v1/audiences/{id}/transfer`."
            "\n\n**Permission:** the owning team, a share of `change`, or admin (`audience.edit`); anyone "
            "else gets 403 naming the owning team. Audited (`audience.edit`, with before and after of each "
            "changed field)."
        ),
        parameters=[AUDIENCE_ID],
        request=AudienceUpdateSerializer,
        responses={
            200: AudienceDetailSerializer,
            **problem_responses(400, 401, 403, 404, 409, 422, failures=_FAILURES),
        },
        examples=[
            OpenApiExample("Request", request_only=True, value={"description": "EU customers who lapsed last year."}),
            OpenApiExample(
                "Another team's audience",
                response_only=True,
                status_codes=["403"],
                value={
                    "type": "https://marketerapi.dev/errors/permission-denied",
                    "title": "You may not do this",
                    "status": 403,
                    "detail": "Lapsed EU customers is owned by the team 'growth'; you are not in it and it was not "
                    "shared with you.",
                    "code": "permission_denied",
                    "hint": "Ask the growth team (or an admin) to share it with you, or copy it into your team as a "
                    "draft and work on the copy (Copy on its page in the portal; POST /api/v1/audiences/42/copy).",
                    "rule": "object_permission",
                    "request_id": "req_5f0c…",
                },
            ),
        ],
    )
    def patch(self, request: Request, audience_id: str) -> Response:
        audience = self._audience(audience_id)
        data = validated_with_rules(
            AudienceUpdateSerializer, request.data, actor=self.actor, audience=audience, partial=True
        )
        return _audience_response(audience_services.audience_update(actor=self.actor, audience=audience, **data))

    @extend_schema(
        operation_id="audiences_destroy",
        summary="Delete a draft or archive a published audience",
        description=(
            "A **draft** is deleted (204). A **published** audience is **archived**: it keeps its versions for the "
            "record, its members stop syncing and `audience.archived` is emitted (200 with the audience). Where the "
            "environment's policy asks for approval (pilot and production: an approver and a developer or admin), "
            "the answer is **202** with the approval request; the archive runs once it is approved. Nothing is "
            "deleted or archived while another audience (or, later, a campaign) uses it (409 `audience_in_use`).\n\n"
            "**Permission:** the owning team, a share of `change`, or admin (`audience.delete` for drafts, "
            "`audience.archive` for published audiences). Audited."
        ),
        parameters=[AUDIENCE_ID],
        request=None,
        responses={
            200: AudienceDetailSerializer,
            202: ApprovalFiledSerializer,
            204: OpenApiResponse(description="The draft was deleted."),
            **problem_responses(
                401,
                403,
                404,
                409,
                failures=_FAILURES,
                overrides={
                    409: "The audience is archived already (`audience_archived`; checked after your permission), in "
                    "use (`audience_in_use`, with `used_by`), its first publish is being built (`audience_building`, "
                    "with `job_id`: wait for the job, then DELETE again), or an approval is already open "
                    "(`approval_pending`)."
                },
            ),
        },
        examples=[OpenApiExample("Approval filed", response_only=True, status_codes=["202"], value=APPROVAL_EXAMPLE)],
    )
    def delete(self, request: Request, audience_id: str) -> Response:
        outcome = audience_services.audience_delete(actor=self.actor, audience=self._audience(audience_id))
        if outcome.approval is not None:
            return Response(approval_brief(outcome.approval), status=status.HTTP_202_ACCEPTED)
        if outcome.result is not None:
            return _audience_response(outcome.result)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AudienceRulesPreview(ActorMixin, APIView):
    rate_class = "preview"

    @extend_schema(
        operation_id="audiences_preview_rules",
        summary="Preview rules without saving",
        description=(
            'Try rules before you save them: send `{"rules": …, "channel": "email"}`. Invalid rules are a 422 '
            "`invalid_rules` listing every problem with its pointer (`/rules/…`).\n\n"
            + PREVIEW_NOTE
            + "\n\n**Permission:** any role (`audience.preview`). Nothing is saved."
        ),
        request=PreviewRequestSerializer,
        responses={
            200: PreviewSerializer,
            **problem_responses(400, 401, 403, 422, 429, failures=_FAILURES, overrides=_BUDGET),
        },
        examples=[
            OpenApiExample(
                "Request",
                request_only=True,
                value={"rules": {"attr": "lifecycle_stage", "op": "eq", "value": "customer"}, "channel": "email"},
            ),
            OpenApiExample("Preview", response_only=True, value=PREVIEW_EXAMPLE),
            OpenApiExample("Invalid rules", response_only=True, status_codes=["422"], value=INVALID_RULES_EXAMPLE),
        ],
    )
    def post(self, request: Request) -> Response:
        data = validated_with_rules(PreviewRequestSerializer, request.data, actor=self.actor)
        result = audience_selectors.audience_preview(actor=self.actor, rules=data["rules"], channel=data["channel"])
        return Response(preview_response(self.actor, result))


class AudiencePreview(ActorMixin, APIView):
    rate_class = "preview"

    @extend_schema(
        operation_id="audiences_preview",
        summary="Preview a saved audience",
        description=(
            "Preview the audience's current rules for its channel (the draft definition, also of a published "
            "audience). No body. Rules that do not validate (e.g. an audience they refer to was archived) are a "
            "422 `invalid_rules`.\n\n" + PREVIEW_NOTE + "\n\n**Permission:** any role (`audience.preview`)."
        ),
        parameters=[AUDIENCE_ID],
        request=None,
        responses={
            200: PreviewSerializer,
            **problem_responses(401, 403, 404, 422, 429, failures=_FAILURES, overrides=_BUDGET),
        },
        examples=[OpenApiExample("Preview", response_only=True, value=PREVIEW_EXAMPLE)],
    )
    def post(self, request: Request, audience_id: str) -> Response:
        audience = audience_selectors.audience_get(actor=self.actor, audience_id=int(audience_id))
        result = audience_selectors.audience_preview(
            actor=self.actor, rules=audience.rules, channel=audience.channel, audience=audience
        )
        return Response(preview_response(self.actor, result))


class AudienceValidate(ActorMixin, APIView):
    rate_class = "preview"

    @extend_schema(
        operation_id="audiences_validate",
        summary="Check an audience before publishing",
        description=(
            "Runs every check and says, for each, what it found and how to fix it: `schema` (the rules are valid; "
            "`errors` lists each problem), `required_metadata` (name, owner team, channel, purpose, description), "
            "`known_names` (custom attributes, event types and event properties the environment's data never had: a "
            "warning with the nearest known names in `errors`, since a name may simply be new), "
            "`address` (matching profiles without an address for the channel: an email address for email, a phone "
            "number for sms, a push token for push, either of the first two for ads), "
            "`consent` (matching profiles with an address but without consent for the channel), "
            "`regional_restrictions` (which apply and how many people they remove), `suppression_overlap` (matching "
            "profiles on a suppression list) and "
            "`size` (reach above zero). `status` is `passed`, `warning` (publishing works; look anyway), `failed` "
            "(publishing would be refused) or `skipped` (not checked until the rules are valid); `valid` is true "
            "when nothing failed or was skipped. Reads only; rate class `preview`.\n\n"
            "**Permission:** any role (`audience.view`)."
        ),
        parameters=[AUDIENCE_ID],
        request=None,
        responses={
            200: ValidateSerializer,
            **problem_responses(401, 403, 404, 422, 429, failures=_FAILURES, overrides=_BUDGET),
        },
        examples=[
            OpenApiExample(
                "Checks",
                response_only=True,
                value={
                    "valid": True,
                    "checks": [
                        {
                            "code": "schema",
                            "passed": True,
                            "status": "passed",
                            "message": "The rules are valid.",
                            "hint": "",
                        },
                        {
                            "code": "consent",
                            "passed": False,
                            "status": "warning",
                            "message": "1,204 of 9,870 matching profiles lack email consent; they will not be members.",
                            "hint": 'Add the rule {"consent": "email", "is": true} so that the rules say exactly who '
                            "you reach, or choose a channel they consented to.",
                            "count": 1204,
                        },
                        {
                            "code": "size",
                            "passed": True,
                            "status": "passed",
                            "message": "The audience would reach 8,120 profiles by email.",
                            "hint": "",
                            "count": 8120,
                        },
                    ],
                },
            )
        ],
    )
    def post(self, request: Request, audience_id: str) -> Response:
        audience = audience_selectors.audience_get(actor=self.actor, audience_id=int(audience_id))
        return Response(audience_selectors.audience_validate(actor=self.actor, audience=audience))


class AudienceShare(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "audience.share", "DELETE": "audience.share"}

    def _shares(self, audience: Audience) -> Response:
        return Response({"audience": audience.pk, "shares": audience_selectors.audience_shares(audience)})

    @extend_schema(
        operation_id="audiences_share",
        summary="Share an audience with a team or a person",
        description=(
            'Send `{"team": "retention", "level": "change"}` or `{"user": "ann", "level": "view"}`. `change` lets '
            "them edit and publish it; `view` is what everyone in the environment has anyway. Sharing again "
            "replaces the level. The answer lists all shares.\n\n"
            "**Permission:** the owning team or admin (`audience.share`); a share of change does not allow sharing "
            "further. Audited (`audience.share`)."
        ),
        parameters=[AUDIENCE_ID],
        request=ShareRequestSerializer,
        responses={200: SharesSerializer, **problem_responses(400, 401, 403, 404, 422, failures=_FAILURES)},
        examples=[
            OpenApiExample("Request", request_only=True, value={"team": "retention", "level": "change"}),
            OpenApiExample(
                "Shares",
                response_only=True,
                value={"audience": 42, "shares": [{"team": "retention", "level": "change"}]},
            ),
        ],
    )
    def post(self, request: Request, audience_id: str) -> Response:
        audience = audience_selectors.audience_get(actor=self.actor, audience_id=int(audience_id))
        data = validated(ShareRequestSerializer, request.data)
        audience_services.audience_share(actor=self.actor, audience=audience, **data)
        return self._shares(audience)

    @extend_schema(
        operation_id="audiences_unshare",
        summary="Take a share back",
        description=(
            'Name the team or person in the body (`{"team": "retention"}`) or the query (`?team=retention`, '
            "`?user=ann`). A share that does not exist is a 404 `share_not_found`.\n\n"
            "**Permission:** the owning team or admin (`audience.share`). Audited (`audience.unshare`)."
        ),
        parameters=[
            AUDIENCE_ID,
            OpenApiParameter("team", str, OpenApiParameter.QUERY, required=False),
            OpenApiParameter("user", str, OpenApiParameter.QUERY, required=False),
        ],
        request=UnshareRequestSerializer,
        responses={200: SharesSerializer, **problem_responses(400, 401, 403, 404, 422, failures=_FAILURES)},
        examples=[OpenApiExample("Shares", response_only=True, value={"audience": 42, "shares": []})],
    )
    def delete(self, request: Request, audience_id: str) -> Response:
        audience = audience_selectors.audience_get(actor=self.actor, audience_id=int(audience_id))
        payload = request.data if request.data else request.query_params.dict()
        data = validated(UnshareRequestSerializer, payload)
        audience_services.audience_unshare(actor=self.actor, audience=audience, **data)
        return self._shares(audience)


class AudienceTransfer(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "audience.transfer"}

    @extend_schema(
        operation_id="audiences_transfer",
        summary="Hand an audience to another team",
        description=(
            'Send `{"team": "retention"}`: that team owns the audience from now on (it may edit, publish and share '
            "it; your team may no longer, unless it is shared with you). Shares stay as they were; a share to the "
            "new owner is replaced by ownership. Naming the team that owns it already, or no team, is a 422 "
            "`invalid_input`; an archived audience is a 409.\n\n"
            "**Permission:** the owning team or admin (`audience.transfer`); a share of `change` does not allow "
            "it. Audited (`audience.transfer`, with the owner before and after)."
        ),
        parameters=[AUDIENCE_ID],
        request=TransferRequestSerializer,
        responses={
            200: AudienceDetailSerializer,
            **problem_responses(400, 401, 403, 404, 409, 422, failures=_FAILURES),
        },
        examples=[
            OpenApiExample("Request", request_only=True, value={"team": "retention"}),
            OpenApiExample(
                "Transferred", response_only=True, value={**AUDIENCE_EXAMPLE, "owner_team": "retention", "shares": []}
            ),
        ],
    )
    def post(self, request: Request, audience_id: str) -> Response:
        audience = audience_selectors.audience_get(actor=self.actor, audience_id=int(audience_id))
        data = validated(TransferRequestSerializer, request.data)
        return _audience_response(
            audience_services.audience_transfer(actor=self.actor, audience=audience, team=data["team"])
        )


class AudiencePromote(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "audience.promote"}

    @extend_schema(
        operation_id="audiences_promote",
        summary="Copy an audience into another environment",
        description=(
            'Send `{"environment": "production"}` (optionally `name` and `owner_team` for the copy). The definition '
            "(rules, channel, purpose, description) — never the members — is copied there as a **draft**, which "
            "then goes through that environment's validation and approvals. `in_audience` conditions are mapped to "
            "the audience of the **same name** there; what cannot be mapped is kept as it was and listed in "
            "`unmapped` with a hint (validate then fails until you fix it). A name that is taken there is a 409 "
            "`audience_name_taken`: send another `name`.\n\n"
            "**Permission:** you must be allowed to create audiences in the target environment (`audience.create` "
            "there: campaign_operator or admin; developers only into a sandbox). Audited in the target environment "
            "(`audience.promote`)."
        ),
        parameters=[AUDIENCE_ID],
        request=PromoteRequestSerializer,
        responses={201: PromotionSerializer, **problem_responses(400, 401, 403, 404, 409, 422, failures=_FAILURES)},
        examples=[
            OpenApiExample("Request", request_only=True, value={"environment": "production"}),
            OpenApiExample(
                "Copied",
                response_only=True,
                status_codes=["201"],
                value={
                    "audience": {**AUDIENCE_EXAMPLE, "id": 97, "environment": "production"},
                    "unmapped": [
                        {
                            "pointer": "/rules/all/3/not/in_audience",
                            "audience_id": 12,
                            "name": "Recent complainers",
                            "hint": "Promote 'Recent complainers' to production first (or create an audience of that "
                            "name there), then edit this condition of the copy.",
                        }
                    ],
                    "warnings": [],
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request, audience_id: str) -> Response:
        audience = audience_selectors.audience_get(actor=self.actor, audience_id=int(audience_id))
        data = validated(PromoteRequestSerializer, request.data)
        promotion = audience_services.audience_promote(actor=self.actor, audience=audience, **data)
        body = {
            "audience": AudienceSerializer(promotion.audience).data,
            "unmapped": promotion.unmapped,
            "warnings": promotion.warnings,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class AudienceCopyView(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "audience.copy"}

    @extend_schema(
        operation_id="audiences_copy",
        summary="Copy an audience into your team as a draft",
        description=(
            "Makes a new **draft** in the same environment with the audience's rules, channel, purpose and "
            "description — never its members, versions or shares — owned by one of your teams: how you build on "
            "another team's audience that you may not change. Send `{}`, or `name` and `team` for the copy "
            "(default: the name with “(copy)”, “(copy 2)” … and your only team). A name that is taken is a 409 "
            "`audience_name_taken` whose hint names a free one. Conditions that name an audience the copy may not "
            "use now (archived, never published) are kept and listed in `warnings`; validate fails until you fix "
            "them.\n\n**Permission:** whoever may create audiences here (`audience.copy`: campaign_operator or "
            "admin; developers in a sandbox), whatever team owns the original. Audited (`audience.copy`)."
        ),
        parameters=[AUDIENCE_ID],
        request=CopyRequestSerializer,
        responses={201: CopySerializer, **problem_responses(400, 401, 403, 404, 409, 422, failures=_FAILURES)},
        examples=[
            OpenApiExample("Request", request_only=True, value={}),
            OpenApiExample(
                "Copied",
                response_only=True,
                status_codes=["201"],
                value={
                    "audience": {
                        **AUDIENCE_EXAMPLE,
                        "id": 97,
                        "name": "Lapsed EU customers (copy)",
                        "owner_team": "retention",
                    },
                    "warnings": [],
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request, audience_id: str) -> Response:
        audience = audience_selectors.audience_get(actor=self.actor, audience_id=int(audience_id))
        data = validated(CopyRequestSerializer, request.data)
        copied = audience_services.audience_copy(actor=self.actor, audience=audience, **data)
        body = {"audience": AudienceSerializer(copied.audience).data, "warnings": copied.warnings}
        return Response(body, status=status.HTTP_201_CREATED)
