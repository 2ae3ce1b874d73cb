"""The publishing API: publish, versions, rollback, memberships (audiences/publishing/ tells the story).

Thin doors: one selector reads the audience (404 for another environment's), one service
acts, and the result is serialized. Publish and rollback answer 202 with the job that
builds the version (follow it at GET /api/v1/jobs/{id}) or with the approval request the
environment's policy asked for; both honour `Idempotency-Key`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.definitions import ApprovalFiledSerializer, validated
from audiences.definitions import selectors as audience_selectors
from audiences.models import Audience, AudienceVersion
from audiences.publishing import selectors as publish_selectors
from audiences.publishing import services as publish
from audiences.publishing.pagination import MembershipPagination, VersionPagination
from governance.approvals import ActionOutcome, approval_brief
from governance.limits.idempotency import idempotent
from governance.limits.quotas import with_quota_warning
from marketerapi.api import ActorMixin, StrictSerializer, UnknownQueryParameters, problem_responses

AUDIENCE_ID = OpenApiParameter("audience_id", int, OpenApiParameter.PATH, description="The audience's `id`.")

_FAILURES = {
    400: "Unknown fields (`unknown_fields`), a body that is not an object (`invalid_request`), a bad `limit` "
    "(`invalid_limit`) or `cursor` (`invalid_cursor`).",
    401: "No token, or an unknown, expired or revoked one.",
    403: "Your roles do not allow this (`permission_denied`; the hint names the roles that do), or the audience "
    "belongs to another team and was not shared with you (the detail names the owning team). Audited.",
    404: "No such audience in your token's environment (`audience_not_found`), or no such version "
    "(`version_not_found`).",
    409: "The audience is archived (`audience_archived`), a version is being built (`publish_in_progress`, with "
    "`job_id`), an approval request is open (`approval_pending`), outside the production change windows "
    "(`outside_change_window`, with `next_window_at`), the version never went live (`version_not_ready`) or is "
    "live already (`version_already_live`); an `Idempotency-Key` still in flight (`idempotency_in_flight`).",
    410: "The version the cursor pages through is no longer kept (`cursor_expired`): start again without a cursor.",
    422: "Invalid rules (`invalid_rules`, every problem with its pointer and hint), bad values (`invalid_input`), "
    "or an `Idempotency-Key` reused with another body (`idempotency_key_reused`).",
    429: "Too many requests (`rate_limited`), or the daily `publish` quota is used up (`quota_exceeded`).",
}


# --- representations -----------------------------------------------------------------------


class JobBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField(help_text="queued → running → succeeded | partially_succeeded | failed")
    url = serializers.CharField()


class VersionBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    state = serializers.CharField(help_text="building, ready or failed.")


class JobAcceptedSerializer(serializers.Serializer):
    job = JobBriefSerializer()
    version = VersionBriefSerializer()
    warnings = serializers.ListField(child=serializers.DictField(), help_text="{code, message, hint}")
    quota_warning = serializers.DictField(required=False, help_text="Past 80 % of the daily publish quota.")


class PublishRequestSerializer(StrictSerializer):
    """Publish takes no fields: it publishes the audience's current definition."""


class RollbackRequestSerializer(StrictSerializer):
    version = serializers.IntegerField(min_value=1, help_text="The `number` of the version to make live again.")


class VersionSerializer(serializers.ModelSerializer):
    is_live = serializers.SerializerMethodField(help_text="The version destinations use now.")
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    rebuilt_from = serializers.IntegerField(
        source="rebuilt_from.number",
        default=None,
        read_only=True,
        allow_null=True,
        help_text="For a rollback: the version restored.",
    )
    job = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)
    members = serializers.IntegerField(read_only=True, allow_null=True, help_text="Reach: members of the version.")

    class Meta:
        model = AudienceVersion
        fields: ClassVar[list[str]] = [
            "id",
            "number",
            "state",
            "is_live",
            "channel",
            "rules",
            "matching",
            "members",
            "added",
            "removed",
            "waterfall",
            "members_retained",
            "withdrawn",
            "rebuilt_from",
            "error",
            "job",
            "created_by",
            "created_at",
            "built_at",
        ]

    def get_is_live(self, version: AudienceVersion) -> bool:
        return version.pk == self.context.get("live_version_id")


class MemberSerializer(serializers.Serializer):
    profile_id = serializers.IntegerField()
    external_id = serializers.CharField()
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    first_name = serializers.CharField(allow_null=True)
    last_name = serializers.CharField(allow_null=True)
    locale = serializers.CharField(allow_null=True)
    country = serializers.CharField(allow_null=True)
    region = serializers.CharField(allow_null=True)
    lifecycle_stage = serializers.CharField(allow_null=True)


class MembersVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    members = serializers.IntegerField()
    built_at = serializers.DateTimeField()
    is_live = serializers.BooleanField()


class MembershipsSerializer(serializers.Serializer):
    version = MembersVersionSerializer(allow_null=True, help_text="The version paged through; null: none is live.")
    next = serializers.CharField(allow_null=True, help_text="The next page, or null on the last.")
    pii_masked = serializers.BooleanField()
    results = MemberSerializer(many=True)


# --- examples ----------------------------------------------------------------------------------

ACCEPTED_EXAMPLE = {
    "job": {"id": 812, "state": "queued", "url": "/api/v1/jobs/812"},
    "version": {"id": 57, "number": 4, "state": "building"},
    "warnings": [],
}
PUBLISH_APPROVAL_EXAMPLE = {
    "approval": {
        "id": 17,
        "state": "pending",
        "required": 1,
        "received": 0,
        "summary": "Publish 'Spring EU buyers': adds 61,204 people, removes 56 (reach 64,020 by email)",
        "expires_at": "2026-03-07T17:05:03Z",
        "url": "/api/v1/approvals/17",
    },
    "detail": "In production, publishing an audience that reaches more than 50,000 people (reach 64,020 > 50,000) "
    "needs 1 approval(s).",
    "hint": "It runs once an approver approves it, within 72 hours; follow it at the url.",
}
VERSION_EXAMPLE = {
    "id": 57,
    "number": 4,
    "state": "ready",
    "is_live": True,
    "channel": "email",
    "rules": {"all": [{"attr": "region", "op": "in", "value": ["EU"]}, {"consent": "email", "is": True}]},
    "matching": 10_412,
    "members": 9_870,
    "added": 1_204,
    "removed": 56,
    "waterfall": [
        {"step": "matching", "remaining": 10_412, "removed": 0},
        {"step": "no address", "remaining": 10_412, "removed": 0},
        {"step": "without consent", "remaining": 9_990, "removed": 422},
        {"step": "suppressed", "remaining": 9_901, "removed": 89},
        {"step": "regional restriction", "remaining": 9_870, "removed": 31},
        {"step": "reachable", "remaining": 9_870, "removed": 0},
    ],
    "members_retained": True,
    "withdrawn": 0,
    "rebuilt_from": None,
    "error": "",
    "job": 812,
    "created_by": "op-maria",
    "created_at": "2026-03-04T17:05:03Z",
    "built_at": "2026-03-04T17:05:05Z",
}
MEMBERS_EXAMPLE = {
    "version": {"id": 57, "number": 4, "members": 9_870, "built_at": "2026-03-04T17:05:05Z", "is_live": True},
    "next": "/api/v1/audiences/42/memberships?cursor=djE6NTc6MTAyNDY&limit=100",
    "pii_masked": True,
    "results": [
        {
            "profile_id": 10_231,
            "external_id": "cust-000123",
            "email": "a***@e***.test",
            "phone": "***23",
            "first_name": "A***",
            "last_name": "E***",
            "locale": "en_GB",
            "country": "GB",
            "region": "EU",
            "lifecycle_stage": "customer",
        }
    ],
}


ACCEPTED_OR_APPROVAL = PolymorphicProxySerializer(
    component_name="PublishAccepted",
    serializers=[JobAcceptedSerializer, ApprovalFiledSerializer],
    resource_type_field_name=None,
)


def _accepted(outcome: ActionOutcome[publish.VersionBuild]) -> Response:
    if outcome.approval is not None:
        filed = approval_brief(outcome.approval)
        if outcome.warnings:
            filed["warnings"] = outcome.warnings
        return Response(filed, status=status.HTTP_202_ACCEPTED, headers={"Location": filed["approval"]["url"]})
    built = outcome.result
    assert built is not None
    url = f"/api/v1/jobs/{built.job.pk}"
    body: dict[str, Any] = {
        "job": {"id": built.job.pk, "state": built.job.state, "url": url},
        "version": {"id": built.version.pk, "number": built.version.number, "state": built.version.state},
        "warnings": outcome.warnings,
    }
    return Response(with_quota_warning(body, built.quota), status=status.HTTP_202_ACCEPTED, headers={"Location": url})


class _AudienceView(ActorMixin, APIView):
    def _audience(self, audience_id: str) -> Audience:
        return audience_selectors.audience_get(actor=self.actor, audience_id=int(audience_id))


def _body(request: Request) -> Any:
    """The JSON body, or {} when none was sent (a bare `POST …/publish` is the common call)."""
    if not request.body.strip():
        return {}
    return {} if isinstance(request.data, QueryDict) and not request.data else request.data


# --- publish and rollback ------------------------------------------------------------------------


class AudiencePublish(_AudienceView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "audience.publish"}

    @extend_schema(
        operation_id="audiences_publish",
        summary="Publish an audience",
        description=(
            "Publishes the audience's current definition as a new immutable **version**. The answer is **202** "
            "with either:\n\n"
            "- `job` — a job that builds the version: its members (everyone the rules match who can be reached "
            "on the channel now: consent granted, not suppressed, no regional restriction — evaluated when the "
            "job runs, so consent withdrawn after a preview is honoured), its counts and its diff against the live "
            "version; then swaps it live in one step, emits `audience.published` and pushes the added and "
            "removed members to every active destination of the environment. Follow it at `GET /api/v1/jobs/{id}` "
            "(state, progress, warnings such as a destination that is down, errors with hints). A failed or "
            "interrupted build leaves the previous version live and the job says why; or\n"
            "- `approval` — where the environment's policy asks for approval (pilot and production: reach above "
            "50,000), an approval request whose summary gives the reach and the diff. It runs once approved, "
            "as you, inside the change windows.\n\n"
            "In production, publishes run only inside change windows (409 `outside_change_window` names the next). "
            "One build per audience at a time (409 `publish_in_progress`). Each accepted publish counts against "
            "the daily `publish` quota (100 a day by default; `quota_warning` past 80 %). Send an "
            "`Idempotency-Key` to make retries safe.\n\n"
            "**Permission:** the owning team, a share of `change`, or admin (`audience.publish`; developers in "
            "a sandbox only), with a token that has the `publish` scope. Audited (`audience.publish`, then "
            "`audience.published` when the version goes live)."
        ),
        parameters=[AUDIENCE_ID],
        request=PublishRequestSerializer,
        responses={
            202: OpenApiResponse(
                ACCEPTED_OR_APPROVAL,
                description="A job builds the version, or (where approval is needed) an approval request was filed.",
            ),
            **problem_responses(400, 401, 403, 404, 409, 422, 429, failures=_FAILURES),
        },
        examples=[
            OpenApiExample("Job started", response_only=True, status_codes=["202"], value=ACCEPTED_EXAMPLE),
            OpenApiExample(
                "Approval requested", response_only=True, status_codes=["202"], value=PUBLISH_APPROVAL_EXAMPLE
            ),
        ],
    )
    @idempotent
    def post(self, request: Request, audience_id: str) -> Response:
        audience = self._audience(audience_id)
        validated(PublishRequestSerializer, _body(request))
        return _accepted(publish.audience_publish(actor=self.actor, audience=audience))


class AudienceRollback(_AudienceView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "audience.rollback"}

    @extend_schema(
        operation_id="audiences_rollback",
        summary="Make an earlier version live again",
        description=(
            'Send `{"version": n}`. A **new** version is built and swapped live like a publish (202 with the '
            "`job`): when version n still keeps its members (the newest "
            "`AUDIENCE_VERSIONS_WITH_MEMBERS`, default 5, do) they are copied exactly — except anyone who has "
            "since withdrawn consent for the channel or been suppressed, who is never published again (a warning "
            "counts them); otherwise it is rebuilt from version n's rules snapshot and the answer warns "
            "(`rebuilt_from_rules`) that today's data may give other members. Emits `audience.rolled_back` and "
            "pushes the diff to every active destination. No approval is asked by default; an admin may add an "
            "approval policy for `audience.rollback` (then 202 with `approval`).\n\n"
            "**Permission:** as for publishing (`audience.rollback`: the owning team, a share of `change`, or "
            "admin; a `publish` token). Audited (`audience.rollback`, then `audience.rolled_back`)."
        ),
        parameters=[AUDIENCE_ID],
        request=RollbackRequestSerializer,
        responses={
            202: OpenApiResponse(
                ACCEPTED_OR_APPROVAL,
                description="A job builds the new version (or an approval "
                "request was filed, where an admin added a policy for rollbacks).",
            ),
            **problem_responses(400, 401, 403, 404, 409, 422, failures=_FAILURES),
        },
        examples=[
            OpenApiExample("Request", request_only=True, value={"version": 3}),
            OpenApiExample(
                "Rebuilt from rules",
                response_only=True,
                status_codes=["202"],
                value={
                    **ACCEPTED_EXAMPLE,
                    "version": {"id": 58, "number": 5, "state": "building"},
                    "warnings": [
                        {
                            "code": "rebuilt_from_rules",
                            "message": "The members of version 1 are no longer kept (only the newest 5 versions "
                            "keep theirs), so it is rebuilt from its rules snapshot: today's data may give other "
                            "members than the 8,112 members it had.",
                            "hint": "Check the new version's counts under GET /api/v1/audiences/{id}/versions once "
                            "the job has finished.",
                        }
                    ],
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request, audience_id: str) -> Response:
        audience = self._audience(audience_id)
        data = validated(RollbackRequestSerializer, _body(request))
        return _accepted(publish.audience_rollback(actor=self.actor, audience=audience, version=data["version"]))


# --- reads ------------------------------------------------------------------------------------------


class AudienceVersions(_AudienceView):
    pagination_class = VersionPagination

    @extend_schema(
        operation_id="audiences_versions_list",
        summary="List an audience's versions",
        description=(
            "Every version, newest first (cursor pages, `limit` up to 500): state (`building`, `ready`, "
            "`failed` with its `error`), whether it `is_live`, its rules and channel snapshot, `matching` and "
            "`members` (reach), the `waterfall`, the diff against the version it replaced (`added`, `removed`), "
            "`members_retained` (member rows are kept for the newest `AUDIENCE_VERSIONS_WITH_MEMBERS` versions, "
            "default 5, and always for the live one; rules, counts and diff sizes for all), who published it "
            "and when, and for a rollback the version it restored (`rebuilt_from`).\n\n"
            "**Permission:** any role (`audience.view`)."
        ),
        parameters=[AUDIENCE_ID],
        responses={200: VersionSerializer(many=True), **problem_responses(401, 403, 404, failures=_FAILURES)},
        examples=[OpenApiExample("A version", value=VERSION_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, audience_id: str) -> Response:
        audience = self._audience(audience_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            publish_selectors.version_list(actor=self.actor, audience=audience), request, view=self
        )
        context = {"live_version_id": audience.live_version_id}
        return paginator.get_paginated_response(VersionSerializer(page, many=True, context=context).data)


class AudienceMemberships(_AudienceView):
    @extend_schema(
        operation_id="audiences_memberships_list",
        summary="List the members of the live version",
        description=(
            "The members of the audience's **live version**, in profile id order, `limit` (default 100, up to "
            "1,000) per page; follow `next`. The first page fixes the version: later pages keep reading it even "
            "when a new version goes live meanwhile, so a walk through the pages is consistent (410 "
            "`cursor_expired` once that version's members are no longer kept). Every page costs the same, the "
            "thousandth like the first. Emails, phones and names are masked for every role except "
            "compliance_reviewer (`pii_masked`); an unmasked page is audited (`profile.pii_read`).\n\n"
            "**Permission:** any role (`audience.view`)."
        ),
        parameters=[
            AUDIENCE_ID,
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From the previous page's `next`."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="Members per page, 1–1,000 (default 100)."),
        ],
        responses={200: MembershipsSerializer, **problem_responses(400, 401, 403, 404, 410, failures=_FAILURES)},
        examples=[OpenApiExample("A page", value=MEMBERS_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, audience_id: str) -> Response:
        audience = self._audience(audience_id)
        unknown = sorted(set(request.query_params) - {"cursor", "limit", "format"})
        if unknown:
            raise UnknownQueryParameters(
                f"Unknown query parameter(s): {', '.join(unknown)}.", hint="Use only: cursor, limit."
            )
        page = MembershipPagination().members_page(actor=self.actor, audience=audience, request=request)
        rows, pii_masked = publish_selectors.members_as_seen(actor=self.actor, members=page.members)
        version = page.version
        body = {
            "version": {
                "id": version.pk,
                "number": version.number,
                "members": version.members,
                "built_at": version.built_at,
                "is_live": version.pk == audience.live_version_id,
            }
            if version is not None
            else None,
            "next": page.next_link,
            "pii_masked": pii_masked,
            "results": rows,
        }
        return Response(body)
