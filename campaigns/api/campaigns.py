"""The campaigns API: definitions, readiness, lifecycle and delivery statistics.

Thin doors (docs/campaigns.md tells the whole story): a strict serializer checks the shape,
one selector reads, one service writes, and the result is serialized. Activation honours
`Idempotency-Key` like publish (governance/limits/idempotency.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.definitions import ApprovalFiledSerializer, validated
from audiences.api.profiles import PolicyAllows
from campaigns.definitions import selectors, services
from campaigns.models import Campaign, CampaignChannel
from campaigns.sending import selectors as sending_selectors
from campaigns.sending import services as sending
from governance.approvals import approval_brief, windows
from governance.limits.idempotency import idempotent
from marketerapi.api import ActorMixin, CursorPagination, StrictSerializer, problem_responses

_FAILURES = {
    400: "Malformed JSON or unknown fields (`unknown_fields`).",
    401: "No token, or an unknown, expired or revoked one.",
    403: "Your roles do not allow this, or the campaign belongs to another team (`permission_denied`, naming "
    "the team). Audited.",
    404: "No such campaign in your token's environment (`campaign_not_found`).",
    409: "The campaign's state does not allow it (`campaign_state_conflict`, `campaign_not_editable`), an "
    "approval is already pending (`approval_pending`), outside a change window "
    "(`campaign_outside_change_window`), or the name is taken (`campaign_name_taken`).",
    422: "Values that are not valid (`invalid_input`: unknown merge fields with did-you-mean, a schedule in the past, "
    "a destination that cannot send the channel), or a campaign that is not ready (`campaign_not_ready`, with the "
    "failing checks).",
    429: "Rate limited, or the `campaign-activate` quota is used up.",
}
CAMPAIGN_ID = OpenApiParameter("campaign_id", int, OpenApiParameter.PATH, description="The campaign's `id`.")

CAMPAIGN_EXAMPLE = {
    "id": 7,
    "name": "Spring winback",
    "owner_team": "growth",
    "purpose": "winback",
    "channel": "email",
    "audience": 42,
    "version": None,
    "destination": 3,
    "assets": {"subject": "We miss you, {{first_name}}", "body": "Hi {{first_name}} …", "sender": "news@shop.test"},
    "schedule_at": None,
    "frequency_cap": 2,
    "frequency_period_days": 7,
    "state": "draft",
    "job": None,
    "created_at": "2026-03-04T17:05:03Z",
    "updated_at": "2026-03-04T17:05:03Z",
    "activated_at": None,
    "finished_at": None,
}


class CampaignSerializer(serializers.ModelSerializer):
    owner_team = serializers.CharField(source="owner_team.name")
    audience = serializers.IntegerField(source="audience_id")
    version = serializers.IntegerField(source="version_id", allow_null=True)
    destination = serializers.IntegerField(source="destination_id")
    job = serializers.IntegerField(source="job_id", allow_null=True)

    class Meta:
        model = Campaign
        fields = (
            "id",
            "name",
            "owner_team",
            "purpose",
            "channel",
            "audience",
            "version",
            "destination",
            "assets",
            "schedule_at",
            "frequency_cap",
            "frequency_period_days",
            "state",
            "job",
            "created_at",
            "updated_at",
            "activated_at",
            "finished_at",
        )


class AssetsSerializer(StrictSerializer):
    subject = serializers.CharField(required=False, allow_blank=True, max_length=500)
    body = serializers.CharField(required=False, allow_blank=True, max_length=100_000)
    sender = serializers.CharField(required=False, allow_blank=True, max_length=254)


class CampaignCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=120)
    owner_team = serializers.CharField(required=False, allow_null=True)
    purpose = serializers.CharField(max_length=200)
    channel = serializers.ChoiceField(CampaignChannel.values)
    audience = serializers.IntegerField(min_value=1)
    destination = serializers.IntegerField(min_value=1)
    assets = AssetsSerializer(required=False)
    schedule_at = serializers.DateTimeField(required=False, allow_null=True)
    frequency_cap = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    frequency_period_days = serializers.IntegerField(required=False, min_value=1, max_value=365)


class CampaignUpdateSerializer(CampaignCreateSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class CheckSerializer(serializers.Serializer):
    code = serializers.CharField()
    passed = serializers.BooleanField()
    message = serializers.CharField()
    hint = serializers.CharField(allow_blank=True)


class ReadinessSerializer(serializers.Serializer):
    ready = serializers.BooleanField()
    checks = CheckSerializer(many=True)
    estimate = serializers.DictField(help_text="{members, recipients, skipped: {reason: count}}")


class SendsSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    state = serializers.CharField()
    total = serializers.IntegerField()
    queued = serializers.IntegerField()
    sending = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    deferred = serializers.IntegerField()
    skipped_by_reason = serializers.DictField(child=serializers.IntegerField())
    failed_by_reason = serializers.DictField(child=serializers.IntegerField())
    job = serializers.DictField(
        allow_null=True, help_text="{id, state, progress, queue_position, warnings, errors, url}"
    )


class CampaignPagination(CursorPagination):
    ordering = "-id"


def _in_environment_time(actor: Any, parse: Any) -> dict[str, Any]:
    """A `schedule_at` without an offset is a time in the environment's time zone (PRODUCT.md)."""
    with timezone.override(windows.zone_of(actor.environment)):
        return dict(parse())


class CampaignListCreate(ActorMixin, generics.ListAPIView):
    serializer_class = CampaignSerializer
    pagination_class = CampaignPagination
    permission_classes = [permissions.IsAuthenticated, PolicyAllows]
    policy_actions: ClassVar[dict[str, str]] = {"POST": "campaign.create"}

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Campaign.objects.none()
        return selectors.campaign_list(actor=self.actor)

    @extend_schema(
        operation_id="campaigns_list",
        summary="List campaigns",
        description="The campaigns of your token's environment, newest first, cursor-paginated (`limit` up to "
        "1,000; follow `next`).\n\n**Permission:** any role (`campaign.view`).",
        responses={200: CampaignSerializer(many=True), **problem_responses(400, 401, 403, failures=_FAILURES)},
        examples=[OpenApiExample("A campaign", value=CAMPAIGN_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        operation_id="campaigns_create",
        summary="Create a campaign",
        description="Create a **draft** campaign: `name`, `owner_team` (one of your teams), `purpose`, `channel` "
        "(email, sms, push), `audience` (an audience of the same channel), `destination` (one whose adapter sends "
        "the channel), `assets` (`subject`, `body` with `{{merge_fields}}`, `sender`), optional `schedule_at` (in the "
        "future), `frequency_cap` per `frequency_period_days`. Every problem is reported at once (422 "
        "`invalid_input`, e.g. `unknown_merge_field` with did-you-mean); nothing is saved when anything is wrong."
        "\n\n**Permission:** campaign_operator or admin, developers in a sandbox (`campaign.create`). Audited.",
        request=CampaignCreateSerializer,
        responses={201: CampaignSerializer, **problem_responses(400, 401, 403, 409, 422, failures=_FAILURES)},
        examples=[OpenApiExample("Created", value=CAMPAIGN_EXAMPLE, response_only=True, status_codes=["201"])],
    )
    def post(self, request: Request) -> Response:
        data = _in_environment_time(self.actor, lambda: validated(CampaignCreateSerializer, request.data))
        campaign = services.campaign_create(actor=self.actor, **data)
        return Response(
            CampaignSerializer(campaign).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/campaigns/{campaign.pk}"},
        )


class _CampaignView(ActorMixin, APIView):
    def _campaign(self, campaign_id: str) -> Campaign:
        return selectors.campaign_get(actor=self.actor, campaign_id=int(campaign_id))


class CampaignDetail(_CampaignView):
    policy_actions: ClassVar[dict[str, str]] = {"PATCH": "campaign.edit", "DELETE": "campaign.delete"}

    @extend_schema(
        operation_id="campaigns_retrieve",
        summary="Get a campaign",
        description="One campaign. Another environment's campaign is a 404.\n\n**Permission:** any role.",
        parameters=[CAMPAIGN_ID],
        responses={200: CampaignSerializer, **problem_responses(401, 403, 404, failures=_FAILURES)},
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        return Response(CampaignSerializer(self._campaign(campaign_id)).data)

    @extend_schema(
        operation_id="campaigns_update",
        summary="Edit a draft campaign",
        description="Change any field of a draft; what you leave out stays. Checked like on create. Once "
        "activated a campaign no longer changes (409 `campaign_not_editable`).\n\n**Permission:** the owning "
        "team, a share of `change`, or admin (`campaign.edit`). Audited with before and after.",
        parameters=[CAMPAIGN_ID],
        request=CampaignUpdateSerializer,
        responses={200: CampaignSerializer, **problem_responses(400, 401, 403, 404, 409, 422, failures=_FAILURES)},
    )
    def patch(self, request: Request, campaign_id: str) -> Response:
        campaign = self._campaign(campaign_id)
        data = _in_environment_time(self.actor, lambda: validated(CampaignUpdateSerializer, request.data, partial=True))
        return Response(CampaignSerializer(services.campaign_update(actor=self.actor, campaign=campaign, **data)).data)

    @extend_schema(
        operation_id="campaigns_destroy",
        summary="Delete a draft campaign",
        description="Deletes a draft (204). An activated campaign is cancelled instead, never deleted (409)."
        "\n\n**Permission:** the owning team, a share of `change`, or admin (`campaign.delete`). Audited.",
        parameters=[CAMPAIGN_ID],
        request=None,
        responses={
            204: OpenApiResponse(description="Deleted."),
            **problem_responses(401, 403, 404, 409, failures=_FAILURES),
        },
    )
    def delete(self, request: Request, campaign_id: str) -> Response:
        services.campaign_delete(actor=self.actor, campaign=self._campaign(campaign_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ShareRequestSerializer(StrictSerializer):
    team = serializers.CharField(required=False)
    user = serializers.CharField(required=False)
    level = serializers.ChoiceField(["view", "change"])


class CampaignShare(_CampaignView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "campaign.share"}

    @extend_schema(
        operation_id="campaigns_share",
        summary="Share a campaign with a team or a person",
        description='Send {"team": "retention", "level": "change"} (or "user"). `change` lets them edit, activate, '
        "pause and cancel it; `view` only shows it (everyone in the environment sees campaigns anyway).\n\n"
        "**Permission:** the owning team or admin (`campaign.share`). Audited.",
        parameters=[CAMPAIGN_ID],
        request=ShareRequestSerializer,
        responses={200: CampaignSerializer, **problem_responses(400, 401, 403, 404, 422, failures=_FAILURES)},
    )
    def post(self, request: Request, campaign_id: str) -> Response:
        campaign = self._campaign(campaign_id)
        data = validated(ShareRequestSerializer, request.data)
        return Response(CampaignSerializer(services.campaign_share(actor=self.actor, campaign=campaign, **data)).data)


class CampaignReadiness(_CampaignView):
    @extend_schema(
        operation_id="campaigns_readiness",
        summary="Is the campaign ready to activate?",
        description="Every check with `passed`, a `message` and, when it failed, a `hint`: audience published and "
        "not empty, consent coverage for the channel, assets complete, merge fields known (did-you-mean), "
        "destination able to send the channel and healthy (circuit breaker), the channel's flag, the activation "
        "quota, the schedule, the change window, and the recipient `estimate` after consent, suppressions, "
        "regional restrictions and the frequency cap.\n\n**Permission:** any role (`campaign.view`).",
        parameters=[CAMPAIGN_ID],
        responses={200: ReadinessSerializer, **problem_responses(401, 403, 404, failures=_FAILURES)},
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        campaign = self._campaign(campaign_id)
        return Response(sending.campaign_readiness(actor=self.actor, campaign=campaign))


def _lifecycle_response(campaign: Campaign) -> Response:
    return Response(CampaignSerializer(campaign).data)


class CampaignActivate(_CampaignView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "campaign.activate"}

    @extend_schema(
        operation_id="campaigns_activate",
        summary="Activate a campaign",
        description="Checks readiness (422 `campaign_not_ready` listing the failing checks with hints), then "
        "answers **202** with either `job` — the send job (follow it at `GET /api/v1/jobs/{id}` or "
        "`GET /api/v1/campaigns/{id}/sends`); a scheduled campaign answers with `job: null` and state `scheduled` — "
        "or `approval`, where the environment's policy asks for one (pilot and production: an approver; two "
        "above 100,000 recipients). In production campaigns start only inside change windows. A campaign is "
        "activated once: a second activate is a 409 and never sends twice. Send an `Idempotency-Key` to make "
        "retries safe.\n\n**Permission:** the owning team, a share of `change`, or admin (`campaign.activate`, a "
        "`publish` token). Audited (`campaign.activate`); emits `campaign.activated`.",
        parameters=[CAMPAIGN_ID],
        request=None,
        responses={
            202: OpenApiResponse(
                description="A send job started (or the campaign is scheduled), or an approval request was filed."
            ),
            **problem_responses(400, 401, 403, 404, 409, 422, 429, failures=_FAILURES),
        },
    )
    @idempotent
    def post(self, request: Request, campaign_id: str) -> Response:
        campaign = self._campaign(campaign_id)
        outcome = sending.campaign_activate(actor=self.actor, campaign=campaign)
        if outcome.approval is not None:
            filed = approval_brief(outcome.approval)
            return Response(filed, status=status.HTTP_202_ACCEPTED, headers={"Location": filed["approval"]["url"]})
        activated = outcome.result
        assert activated is not None
        job = activated.job
        body = {
            "campaign": CampaignSerializer(activated).data,
            "job": {"id": job.pk, "state": job.state, "url": f"/api/v1/jobs/{job.pk}"} if job else None,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


class CampaignPause(_CampaignView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "campaign.pause"}

    @extend_schema(
        operation_id="campaigns_pause",
        summary="Pause a sending or scheduled campaign",
        description="Sending stops after the batch in flight; resume continues with who is still queued. "
        "**Permission:** the owning team, a share of change, or admin (`campaign.pause`). Audited; emits "
        "`campaign.paused`.",
        parameters=[CAMPAIGN_ID],
        request=None,
        responses={200: CampaignSerializer, **problem_responses(401, 403, 404, 409, failures=_FAILURES)},
    )
    def post(self, request: Request, campaign_id: str) -> Response:
        return _lifecycle_response(sending.campaign_pause(actor=self.actor, campaign=self._campaign(campaign_id)))


class CampaignResume(_CampaignView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "campaign.resume"}

    @extend_schema(
        operation_id="campaigns_resume",
        summary="Resume a paused campaign",
        description="A new send job sends to everyone still queued; nobody is sent twice. **Permission:** as "
        "pause (`campaign.resume`). Audited; emits `campaign.resumed`.",
        parameters=[CAMPAIGN_ID],
        request=None,
        responses={200: CampaignSerializer, **problem_responses(401, 403, 404, 409, failures=_FAILURES)},
    )
    def post(self, request: Request, campaign_id: str) -> Response:
        return _lifecycle_response(sending.campaign_resume(actor=self.actor, campaign=self._campaign(campaign_id)))


class CampaignCancel(_CampaignView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "campaign.cancel"}

    @extend_schema(
        operation_id="campaigns_cancel",
        summary="Cancel a campaign",
        description="Stops for good after the batch in flight; everyone still queued or deferred is skipped "
        "(`cancelled`). What was sent stays on record. **Permission:** as pause (`campaign.cancel`). Audited; "
        "emits `campaign.cancelled`.",
        parameters=[CAMPAIGN_ID],
        request=None,
        responses={200: CampaignSerializer, **problem_responses(401, 403, 404, 409, failures=_FAILURES)},
    )
    def post(self, request: Request, campaign_id: str) -> Response:
        return _lifecycle_response(sending.campaign_cancel(actor=self.actor, campaign=self._campaign(campaign_id)))


class CampaignSends(_CampaignView):
    @extend_schema(
        operation_id="campaigns_sends",
        summary="Delivery statistics",
        description="Queued, sending, sent, failed (by reason), deferred and skipped by reason (`no_address`, "
        "`no_consent`, `suppressed`, `regional_restriction`, `frequency_cap`, `withdrawn_mid_send`, `cancelled`), "
        "with the send job's state, progress and queue position.\n\n**Permission:** any role (`campaign.view`).",
        parameters=[CAMPAIGN_ID],
        responses={200: SendsSerializer, **problem_responses(401, 403, 404, failures=_FAILURES)},
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        campaign = self._campaign(campaign_id)
        return Response(sending_selectors.campaign_sends(actor=self.actor, campaign=campaign))


__all__ = ["ApprovalFiledSerializer"]
