"""The audit trail API: list with filters, export for a SIEM, verify the hash chain.

`GET /audit-events/`, `GET /audit-events/export`, `GET /audit-events/verify`. Every role
reads the events of its own actions; approvers, compliance reviewers and admins read
everyone's (governance.roles.AUDIT_READ_ALL_ROLES). All three stay in the environment
of the caller's token. See docs/audit.md.
"""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from django.urls import re_path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.audit.exports import EXPORT_FORMATS, event_as_dict
from governance.audit.selectors import DATETIME_HINT, audit_chain_report, audit_event_list, chain_report_as_dict
from governance.audit.services import audit_log_export
from governance.models import AuditEvent, Door, Outcome
from marketerapi.api import ActorMixin, CursorPagination, problem_responses

# --- serializers (for the schema; the shape itself is exports.event_as_dict) ----------


class AuditTargetSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="app_label.model, e.g. audiences.audience.")
    id = serializers.CharField(help_text="The object's id; empty for a batch (e.g. a profile upsert).")
    label = serializers.CharField(  # type: ignore[assignment]  # a field named like a Field attribute
        help_text="What the object was called at the time."
    )


class AuditEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    environment = serializers.CharField(help_text="The environment's slug.")
    actor = serializers.CharField(help_text="The username at the time, or `system (<door>)` for shell and tasks.")
    token_prefix = serializers.CharField(allow_null=True, help_text="The first characters of the token used, if any.")
    door = serializers.ChoiceField(Door.choices, help_text="How the action arrived.")
    ip = serializers.IPAddressField(allow_null=True)
    request_id = serializers.CharField(help_text="The X-Request-ID of the request, to find it in the logs.")
    action = serializers.CharField(help_text="The policy action, e.g. audience.publish.")
    target = AuditTargetSerializer(allow_null=True)
    outcome = serializers.ChoiceField(Outcome.choices)
    reasons = serializers.ListField(child=serializers.CharField(), help_text="Why the policy decided as it did.")
    changes = serializers.DictField(help_text="A before/after summary of the change.")
    approval_refs = serializers.ListField(child=serializers.JSONField(), help_text="Approval requests involved.")
    hash = serializers.CharField(help_text="SHA-256 over this row and prev_hash.")
    prev_hash = serializers.CharField(help_text="The hash of the previous row of this environment's chain.")

    def to_representation(self, instance: AuditEvent) -> dict[str, Any]:
        return event_as_dict(instance)


class ChainBreakSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The first row whose link or content does not check out.")
    reason = serializers.CharField()


class ChainHeadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    hash = serializers.CharField()


class ChainReportSerializer(serializers.Serializer):
    environment = serializers.CharField()
    valid = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="Rows checked, up to and including the first broken one.")
    first_broken = ChainBreakSerializer(allow_null=True)
    head = ChainHeadSerializer(
        allow_null=True,
        help_text="The newest row when the chain is intact. Keep its hash elsewhere: a chain cannot show by "
        "itself that its newest rows were removed.",
    )


# --- documentation pieces ---------------------------------------------------------

FILTERS = [
    OpenApiParameter(
        "actor", str, description="Who acted, as the `actor` field shows it: a username, or `system (cli)`."
    ),
    OpenApiParameter(
        "action", str, description="An action (`audience.publish`) or a prefix ending in `.*` (`audience.*`)."
    ),
    OpenApiParameter(
        "target",
        str,
        description="`type:id` as in an event's target, e.g. `audiences.audience:42`; `type:*` for any object "
        "of that type.",
    ),
    OpenApiParameter("outcome", str, enum=[str(v) for v in Outcome.values], description="The outcome."),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="At or after this moment. " + DATETIME_HINT),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Before this moment (exclusive)."),
]

WHO_READS_WHAT = (
    "**Permission:** any role (`audit.view`). Analysts, campaign operators and developers see the events of "
    "their own actions; approvers, compliance reviewers and admins see everyone's. Only events of your "
    "token's environment ever appear."
)

EVENT_EXAMPLE = {
    "id": 4812,
    "occurred_at": "2026-03-04T17:05:12.204311Z",
    "environment": "production",
    "actor": "ann",
    "token_prefix": "mk_production_q3Zt0b",
    "door": "api",
    "ip": "203.0.113.7",
    "request_id": "req_5f0c2a9e1b7d4c3a8e6f0b1d2c3a4e5f",
    "action": "consent.sync",
    "target": {"type": "audiences.consent", "id": "", "label": "batch of 1,204 consent updates"},
    "outcome": "allowed",
    "reasons": ["Your roles allow: apply consent updates."],
    "changes": {"rows": 1204, "updated": 1180, "unchanged": 20, "stale": 4},
    "approval_refs": [],
    "hash": "9c1e…",
    "prev_hash": "41aa…",
}


_FAILURES = {
    400: "A query parameter this endpoint does not know (`unknown_query_parameter`, lists `allowed_parameters`), "
    "or a cursor that was not taken from `next`/`previous` (`invalid_cursor`).",
    401: "No token, or an unknown, expired or revoked one (`not_authenticated`, `invalid_token`).",
    403: "Your user holds no role (`permission_denied`); every role may read its own events.",
    422: "A filter value is not valid (`invalid_filter`): a date-time that is not ISO 8601, an unknown outcome, "
    "a target that is not `type:id`, or `until` not after `since`. Every bad parameter is listed in `errors`.",
}


def _problems(*statuses: int, overrides: dict[int, str] | None = None) -> dict[int, OpenApiResponse]:
    return problem_responses(*statuses, failures=_FAILURES, overrides=overrides)


BAD_FILTER_EXAMPLE = OpenApiExample(
    "A bad date",
    response_only=True,
    status_codes=["422"],
    value={
        "type": "https://marketerapi.dev/errors/invalid-filter",
        "title": "Some filter values are not valid",
        "status": 422,
        "detail": "1 filter value(s) are not valid.",
        "code": "invalid_filter",
        "hint": "Fix each parameter listed in `errors`; its `hint` says how.",
        "errors": [
            {
                "pointer": "",
                "parameter": "since",
                "code": "invalid_datetime",
                "message": "'yesterday' is not an ISO 8601 date-time.",
                "hint": DATETIME_HINT,
            }
        ],
        "request_id": "req_5f0c…",
    },
)


class _IgnoreFormatParameter(DefaultContentNegotiation):
    """On the export, `?format=` names the file format, not one of DRF's renderers."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


# --- views ------------------------------------------------------------------------


class AuditEventList(ActorMixin, generics.GenericAPIView):
    queryset = AuditEvent.objects.none()  # for the schema only; get() asks the selector
    serializer_class = AuditEventSerializer
    pagination_class = CursorPagination

    @extend_schema(
        operation_id="audit_events_list",
        summary="List audit events",
        description=(
            "The record of actions in your token's environment — who did what, when, through which door, "
            "with what outcome — newest first, cursor-paginated (`limit` up to 1,000; follow `next`). "
            "Denied attempts are here too, with the reasons the policy gave.\n\n"
            "Filter with `actor`, `action` (exact, or a prefix such as `audience.*`), `target` (`type:id`), "
            "`outcome`, `since` (inclusive) and `until` (exclusive). An unknown parameter is a 400 and a bad "
            "value a 422, so a typo never returns everything.\n\n" + WHO_READS_WHAT
        ),
        parameters=FILTERS,
        responses={
            200: AuditEventSerializer(many=True),
            **_problems(400, 401, 403, 422),
        },
        examples=[
            OpenApiExample(
                "A page",
                response_only=True,
                value=EVENT_EXAMPLE,
            ),
            BAD_FILTER_EXAMPLE,
        ],
    )
    def get(self, request: Request) -> Response:
        events = audit_event_list(actor=self.actor, params=request.query_params, extra_parameters=("cursor", "limit"))
        page = self.paginate_queryset(events)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class AuditEventExport(ActorMixin, APIView):
    content_negotiation_class = _IgnoreFormatParameter

    @extend_schema(
        operation_id="audit_events_export",
        summary="Export audit events for a SIEM",
        description=(
            "The same events and filters as the list, oldest first, streamed as a file "
            "(`Content-Disposition: attachment`) however many there are:\n\n"
            + "\n".join(f"- `format={f.name}`: {f.description} (`{f.content_type}`)" for f in EXPORT_FORMATS.values())
            + "\n\nThe export is a snapshot up to the newest matching event at the time of the request, and is "
            "itself audited: one `audit.export` event names the format, the filters and how many events it holds. "
            "Pull increments with `since` set to the last `occurred_at` you stored.\n\n"
            "**Permission:** as for the list (`audit.export`); a token needs the `export` scope. A refused "
            "export is audited."
        ),
        parameters=[
            OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), default="jsonl", description="File format."),
            *FILTERS,
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="`jsonl` and `ocsf`: one JSON object per line."
            ),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="`csv`, with a header row."),
            **_problems(
                400,
                401,
                403,
                422,
                overrides={
                    400: "A query parameter this endpoint does not know (`unknown_query_parameter`).",
                    403: "No role, or a token without the `export` scope (`permission_denied`); audited.",
                    422: "An unknown `format` (`invalid_export_format`, lists `allowed_formats`) or a bad filter "
                    "value (`invalid_filter`).",
                },
            ),
        },
        examples=[
            OpenApiExample(
                "jsonl",
                response_only=True,
                media_type="application/x-ndjson",
                value='{"id":4812,"occurred_at":"2026-03-04T17:05:12.204311Z","environment":"production",'
                '"actor":"ann","action":"consent.sync","outcome":"allowed",…}\n',
            ),
            OpenApiExample(
                "csv",
                response_only=True,
                media_type="text/csv",
                value="id,occurred_at,environment,actor,token_prefix,door,ip,request_id,action,target_type,"
                "target_id,target_label,outcome,reasons,changes,approval_refs,hash,prev_hash\r\n"
                "4812,2026-03-04T17:05:12.204311Z,production,ann,mk_production_q3Zt0b,api,203.0.113.7,req_5f0c…,"
                'consent.sync,audiences.consent,,"batch of 1,204 consent updates",allowed,'
                '"[""Your roles allow: apply consent updates.""]","{""rows"":1204,…}",[],9c1e…,41aa…\r\n',
            ),
            OpenApiExample(
                "ocsf",
                response_only=True,
                media_type="application/x-ndjson",
                value='{"class_uid":6003,"category_uid":6,"activity_id":3,"activity_name":"Update",'
                '"type_uid":600303,"time":1772643912204,"status_id":1,"status":"Success",'
                '"actor":{"user":{"name":"ann","uid":"7"}},"src_endpoint":{"ip":"203.0.113.7"},'
                '"api":{"operation":"consent.sync"},"metadata":{"uid":"4812","product":{"name":"marketerapi"}},'
                '"unmapped":{…}}\n',
            ),
        ],
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        export = audit_log_export(actor=self.actor, params=request.query_params)
        response = StreamingHttpResponse(export.chunks, content_type=export.format.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["X-Audit-Events"] = str(export.events)
        response["Cache-Control"] = "no-store"
        return response


class AuditChainVerify(ActorMixin, APIView):
    @extend_schema(
        operation_id="audit_events_verify",
        summary="Verify the audit chain",
        description=(
            "Walks your environment's audit events from the first and checks that each row links to the one "
            "before it (`prev_hash`) and still matches its own `hash`. `valid` is false at the first row that "
            "was altered, removed or reordered; `first_broken` names it. `head` is the newest row of an intact "
            "chain: compare its hash with the copy your SIEM holds to notice removed newest rows.\n\n"
            "The walk reads every event of the environment; operators run `python manage.py audit_verify` "
            "on a schedule for every environment.\n\n"
            "**Permission:** any role (`audit.verify`); the answer shows no event's content."
        ),
        responses={200: ChainReportSerializer, **_problems(401, 403)},
        examples=[
            OpenApiExample(
                "Intact",
                response_only=True,
                value={
                    "environment": "production",
                    "valid": True,
                    "checked": 4812,
                    "first_broken": None,
                    "head": {"id": 4812, "hash": "9c1e…"},
                },
            ),
            OpenApiExample(
                "Broken",
                response_only=True,
                value={
                    "environment": "production",
                    "valid": False,
                    "checked": 57,
                    "first_broken": {"id": 57, "reason": "the row's content does not match its hash: it was altered"},
                    "head": None,
                },
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        report = audit_chain_report(actor=self.actor)
        return Response(chain_report_as_dict(report, self.actor.environment.slug))


urlpatterns = [
    re_path(r"^audit-events/?$", AuditEventList.as_view(), name="audit-event-list"),
    re_path(r"^audit-events/export/?$", AuditEventExport.as_view(), name="audit-event-export"),
    re_path(r"^audit-events/verify/?$", AuditChainVerify.as_view(), name="audit-event-verify"),
]
