"""The exports API: request an export, follow it, list them, get a signed download link;
and the download itself (the link, outside /api/v1/: the signature is its credential).

Thin doors: a selector reads (404 for another environment's export), one service acts.
`POST /exports/` answers 202 with the export and its job, or with the approval request
a PII export files in pilot and production; it honours `Idempotency-Key`. docs/exports.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import FileResponse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.definitions import ApprovalFiledSerializer, validated
from audiences.definitions import selectors as audience_selectors
from audiences.exports import selectors, services
from audiences.exports.columns import DEFAULT_FIELDS
from audiences.models import Export, ExportFormat
from governance.actors import client_ip
from governance.approvals import ActionOutcome, approval_brief
from governance.limits.idempotency import idempotent
from governance.limits.quotas import with_quota_warning
from marketerapi.api import ActorMixin, CursorPagination, StrictSerializer, problem_responses
from marketerapi.middleware import current_request_id

EXPORT_ID = OpenApiParameter("export_id", int, OpenApiParameter.PATH, description="The export's `id`.")

_FAILURES = {
    400: "Unknown fields (`unknown_fields`), a body that is not an object (`invalid_request`), a bad `limit` or "
    "`cursor`.",
    403: "Your roles do not allow exports (`permission_denied`; the hint names the roles that do); a field your "
    "role may export only masked was asked for with PII (`export_field_forbidden`, naming the fields); the "
    "`exports_pii` flag is off for you (`feature_disabled`); someone else's export (`export_not_yours`). Audited.",
    404: "No such export, or audience, in your token's environment (`export_not_found`, `audience_not_found`).",
    409: "The audience has no live version (`export_audience_not_published`); the file is not ready "
    "(`export_not_ready`); an approval request for a PII export of this audience is open (`approval_pending`).",
    410: "The file expired and was deleted (`export_expired`).",
    422: "Unknown or repeated fields (`export_field_unknown`, each with a did-you-mean), a bad format "
    "(`invalid_input`).",
    429: "Too many requests (`rate_limited`), or the monthly export quota is used up (`quota_exceeded`).",
}


class ExportRequestSerializer(StrictSerializer):
    audience = serializers.IntegerField(min_value=1, help_text="The audience's `id`; its live version is exported.")
    format = serializers.ChoiceField(choices=ExportFormat.values, default="csv", help_text="csv or jsonl.")
    # A field named like Serializer.fields: DRF's metaclass takes declared fields out of the
    # class, so the property stays intact (mypy only sees the class attribute).
    fields = serializers.ListField(  # type: ignore[assignment]
        child=serializers.CharField(max_length=300),
        default=list(DEFAULT_FIELDS),
        help_text="Columns in order: profile columns (external_id, email, phone, push_token, first_name, last_name, "
        "locale, country, region, lifecycle_stage, created_at, updated_at) and custom attributes as "
        "`attributes.<key>`.",
    )
    pii = serializers.BooleanField(
        default=False, help_text="PII unmasked (compliance reviewers; needs approval in pilot and production)."
    )


class ExportSerializer(serializers.ModelSerializer):
    audience = serializers.SerializerMethodField()
    job = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    download = serializers.SerializerMethodField(help_text="Where to get a signed link, once `ready`.")

    class Meta:
        model = Export
        fields: ClassVar[list[str]] = [
            "id",
            "audience",
            "format",
            "fields",
            "pii",
            "state",
            "rows",
            "size",
            "job",
            "error",
            "created_by",
            "created_at",
            "finished_at",
            "expires_at",
            "deleted_at",
            "download",
        ]

    def get_audience(self, export: Export) -> dict[str, Any] | None:
        audience = export.audience
        if audience is None:
            return None
        return {"id": audience.pk, "name": audience.name, "version": export.version_id}

    def get_job(self, export: Export) -> dict[str, Any] | None:
        job = export.job
        if job is None:
            return None
        return {"id": job.pk, "state": job.state, "url": f"/api/v1/jobs/{job.pk}", "progress": job.progress}

    def get_download(self, export: Export) -> str | None:
        return f"/api/v1/exports/{export.pk}/download" if export.state == "ready" else None


class ExportAcceptedSerializer(serializers.Serializer):
    export = ExportSerializer()
    quota_warning = serializers.DictField(required=False, help_text="Past 80 % of the month's export quota.")


class DownloadLinkSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="GET it to download the file (no token needed; it is signed for you).")
    expires_at = serializers.DateTimeField()


EXPORT_EXAMPLE = {
    "id": 31,
    "audience": {"id": 42, "name": "Spring EU buyers", "version": 57},
    "format": "csv",
    "fields": ["external_id", "email", "region"],
    "pii": False,
    "state": "ready",
    "rows": 9870,
    "size": 412_330,
    "job": {"id": 815, "state": "succeeded", "url": "/api/v1/jobs/815", "progress": {"done": 9870, "total": 9870}},
    "error": "",
    "created_by": "an-lee",
    "created_at": "2026-03-04T17:05:03Z",
    "finished_at": "2026-03-04T17:05:06Z",
    "expires_at": "2026-03-05T17:05:06Z",
    "deleted_at": None,
    "download": "/api/v1/exports/31/download",
}


class ExportPagination(CursorPagination):
    ordering = "-id"


def _accepted(outcome: ActionOutcome[services.ExportStarted]) -> Response:
    if outcome.approval is not None:
        filed = approval_brief(outcome.approval)
        return Response(filed, status=status.HTTP_202_ACCEPTED, headers={"Location": filed["approval"]["url"]})
    started = outcome.result
    assert started is not None
    url = f"/api/v1/exports/{started.export.pk}"
    body = {"export": ExportSerializer(started.export).data}
    return Response(with_quota_warning(body, started.quota), status=status.HTTP_202_ACCEPTED, headers={"Location": url})


class ExportListCreate(ActorMixin, APIView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "export.create"}

    @extend_schema(
        operation_id="exports_list",
        summary="List exports",
        description="Your exports, newest first (compliance reviewers and admins: everyone's in the environment), "
        "cursor-paginated.\n\n**Permission:** any role (`export.view`).",
        parameters=[
            OpenApiParameter("limit", int, description="1–1,000 (default 100)."),
            OpenApiParameter("cursor", str, description="From `next`."),
        ],
        responses={200: ExportSerializer(many=True), **problem_responses(400, 401, 403, failures=_FAILURES)},
        examples=[OpenApiExample("Exports", response_only=True, value={"next": None, "results": [EXPORT_EXAMPLE]})],
    )
    def get(self, request: Request) -> Response:
        paginator = ExportPagination()
        page = paginator.paginate_queryset(selectors.export_list(actor=self.actor), request, view=self)
        return paginator.get_paginated_response(ExportSerializer(page, many=True).data)

    @extend_schema(
        operation_id="exports_create",
        summary="Export an audience's members",
        description=(
            "Writes the members of the audience's **live version** to a file — `csv` (with a header) or `jsonl` — "
            "with the `fields` you name, in order. **202** with the export (follow it at `GET /api/v1/exports/{id}`: "
            "`queued` → `running` → `ready` | `failed`; then `expired` once its file is deleted, after "
            "`EXPORTS_TTL_HOURS`, default 24 h), or with an approval request.\n\n"
            "PII (email, phone, push token, names, and custom attributes the catalogue marks as personal data) is "
            'masked unless `"pii": true`: a PII export is for compliance reviewers, behind the `exports_pii` flag, '
            "and needs another compliance reviewer's approval in pilot and production. Asking for PII fields with "
            "PII when your role may only export them masked is refused naming the fields (403 "
            "`export_field_forbidden`), never answered with a file that silently leaves them out. Quotas per month: "
            "50 masked and 10 PII exports per user. Exports share the environment's limit of heavy jobs: past it, "
            "the export waits `queued` with its queue position on the job.\n\n"
            "**Permission:** analysts, operators, compliance reviewers and admins (`export.create`); PII: "
            "compliance reviewers (`export.create_pii`); a token with the `export` scope. Audited."
        ),
        request=ExportRequestSerializer,
        responses={
            202: OpenApiResponse(ExportAcceptedSerializer, description="The export was queued, or approval requested."),
            **problem_responses(400, 401, 403, 404, 409, 422, 429, failures=_FAILURES),
        },
        examples=[
            OpenApiExample(
                "A masked CSV export",
                request_only=True,
                value={"audience": 42, "format": "csv", "fields": ["external_id", "email", "region"], "pii": False},
            ),
            OpenApiExample(
                "Queued",
                response_only=True,
                status_codes=["202"],
                value={"export": {**EXPORT_EXAMPLE, "state": "queued"}},
            ),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = validated(ExportRequestSerializer, request.data)
        audience = audience_selectors.audience_get(actor=self.actor, audience_id=data["audience"])
        outcome = services.export_create(
            actor=self.actor, audience=audience, format=data["format"], fields=data["fields"], pii=data["pii"]
        )
        return _accepted(outcome)


class ExportDetail(ActorMixin, APIView):
    @extend_schema(
        operation_id="exports_retrieve",
        summary="Show an export",
        description="Its state, rows, size, job and `expires_at`; `download` once it is ready.\n\n"
        "**Permission:** who ran it, compliance reviewers and admins (`export.view`).",
        parameters=[EXPORT_ID],
        responses={200: ExportSerializer, **problem_responses(401, 404, failures=_FAILURES)},
        examples=[OpenApiExample("An export", response_only=True, value=EXPORT_EXAMPLE)],
    )
    def get(self, request: Request, export_id: str) -> Response:
        return Response(ExportSerializer(selectors.export_get(actor=self.actor, export_id=int(export_id))).data)


class ExportDownloadLink(ActorMixin, APIView):
    @extend_schema(
        operation_id="exports_download",
        summary="Get a signed download link",
        description=(
            "A link to the file, signed for you: it expires after `EXPORTS_LINK_HOURS` (default 24 h, never after "
            "the file) and any change to it makes it invalid (403 `export_link_invalid`). GET the link to "
            "download; every download is audited (`export.download`).\n\n"
            "**Permission:** the person who ran the export (`export.download`, a token with the `export` scope)."
        ),
        parameters=[EXPORT_ID],
        responses={200: DownloadLinkSerializer, **problem_responses(401, 403, 404, 409, 410, failures=_FAILURES)},
        examples=[
            OpenApiExample(
                "A link",
                response_only=True,
                value={"url": "/downloads/exports/eyJlIjozMX0:1uX…", "expires_at": "2026-03-05T17:05:06Z"},
            )
        ],
    )
    def get(self, request: Request, export_id: str) -> Response:
        export = selectors.export_get_own(actor=self.actor, export_id=int(export_id))
        link = services.export_download_link(actor=self.actor, export=export)
        return Response({"url": request.build_absolute_uri(link.url), "expires_at": link.expires_at})


class ExportFile(APIView):
    """GET /downloads/exports/<signature>: the file. No token: the signature says who it is for."""

    authentication_classes: list[Any] = []  # DRF's own attribute
    permission_classes: list[Any] = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request: Request, signature: str) -> FileResponse:
        export, handle = services.export_download(
            signature=signature, ip=client_ip(request), request_id=current_request_id()
        )
        content_type = "text/csv" if export.format == "csv" else "application/x-ndjson"
        response = FileResponse(
            handle, as_attachment=True, filename=f"export-{export.pk}.{export.format}", content_type=content_type
        )
        response["Cache-Control"] = "private, no-store"
        return response


# The shapes of approval answers are the audiences API's.
ExportApprovalSerializer = ApprovalFiledSerializer
