"""Exports, the request side and the file's life: request an export, hand out a signed
download link, serve a download, delete expired files.

    POST /exports/ ── export_create ──> 202 approval request   (a PII export where the policy asks)
                                   └──> 202 export `queued` + its job (kind `export.create`, heavy:
                                        it waits for a free slot of the environment's limit)
    GET /exports/{id}/download ── export_download_link ──> a signed link (expires, cannot be altered)
    GET the link ── export_download ──> the file, audited (`export.download`)
    beat ── exports_expire ──> files past expires_at deleted, the export says `expired`

The worker side (runner.py) streams the live version's members to the file.

A masked export (`export.create`) is open to analysts, operators, compliance reviewers and
admins; its PII columns are masked. A PII export (`export.create_pii`) needs the
compliance reviewer's role, the `exports_pii` flag, and (pilot, production) a compliance
reviewer's approval; anyone else asking for PII is refused with the fields named (403
`export_field_forbidden`), never given a silently reduced file. Quotas per user and month:
`export-masked`, `export-pii` (PRODUCT.md §6).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.db import transaction
from django.utils import timezone

from audiences.exports import storage
from audiences.exports.columns import MAX_FIELDS, plan_fields
from audiences.exports.errors import (
    ExportAudienceNotPublished,
    ExportExpired,
    ExportFieldForbidden,
    ExportFieldUnknown,
    ExportLinkExpired,
    ExportLinkInvalid,
    ExportNotFound,
    ExportNotReady,
)
from audiences.models import Audience, AudienceState, Export, ExportFormat, ExportState
from governance import policy
from governance.actors import Actor
from governance.approvals import ActionOutcome, Execution, fingerprint_of, request_or_run
from governance.audit import trail as audit
from governance.limits import quotas
from governance.limits.services import quota_consume
from governance.models import Door, Environment
from integrations.jobs import services as jobs
from integrations.models import Job
from marketerapi.problems import InvalidInput, NotFound

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger("marketerapi.exports")

CREATE = "export.create"
CREATE_PII = "export.create_pii"
DOWNLOAD = "export.download"
EXPIRE = "export.expire"
JOB_KIND = "export.create"
QUOTAS = {CREATE: "export-masked", CREATE_PII: "export-pii"}
LINK_SALT = "marketerapi.exports.download"


@dataclass(frozen=True)
class ExportStarted:
    """An export that runs now: the export (follow it at GET /api/v1/exports/{id}), its job,
    and what is left of the month's export quota."""

    export: Export
    job: Job
    quota: quotas.QuotaStatus | None = None


def export_fingerprint(audience: Audience) -> str:
    """What a compliance reviewer approved: the members of this live version."""
    return fingerprint_of("audiences.audience", audience.pk, "export", audience.live_version_id, audience.state)


def _check_input(fmt: str, fields: list[str]) -> None:
    problems = []
    if fmt not in ExportFormat.values:
        problems.append(
            {
                "pointer": "/format",
                "code": "invalid_choice",
                "message": f"{fmt!r} is not a format.",
                "hint": "Send csv or jsonl.",
            }
        )
    if not fields:
        problems.append(
            {
                "pointer": "/fields",
                "code": "empty",
                "message": "No fields.",
                "hint": 'Name the columns, e.g. ["external_id", "email"].',
            }
        )
    elif len(fields) > MAX_FIELDS:
        problems.append(
            {
                "pointer": "/fields",
                "code": "too_many",
                "message": f"{len(fields)} fields.",
                "hint": f"At most {MAX_FIELDS}.",
            }
        )
    seen: set[str] = set()
    for index, name in enumerate(fields):
        if name in seen:
            problems.append(
                {
                    "pointer": f"/fields/{index}",
                    "code": "duplicate",
                    "message": f"{name!r} is listed twice.",
                    "hint": "List each field once.",
                }
            )
        seen.add(name)
    if problems:
        raise InvalidInput("The export request has invalid values.", errors=problems)


def export_create(
    *,
    actor: Actor,
    audience: Audience,
    format: str,
    fields: list[str],
    pii: bool = False,
    context: dict[str, Any] | None = None,
    approval_refs: list[dict[str, Any]] | None = None,
) -> ActionOutcome[ExportStarted]:
    """Export the members of the audience's live version: `fields` in order, as `format`
    (csv or jsonl), PII unmasked when `pii` (a compliance reviewer's export, approved where
    the policy asks) and masked otherwise.

    Refusals, nothing written: 403 (role; a PII field for a role that may only export it
    masked — `export_field_forbidden` names the fields; the `exports_pii` flag), 422
    (unknown or duplicate fields, a bad format), 409 (no live version), 429 (quota).
    """
    action = CREATE_PII if pii else CREATE
    fields = [str(name) for name in fields]
    _check_input(format, fields)
    plan, unknown = plan_fields(audience.environment, fields)
    try:
        decision = policy.require(actor, action, audience, context)
    except policy.PolicyDenied as denied:
        if pii and plan.pii_fields and denied.extra.get("rule") == "role_permission":
            forbidden = ExportFieldForbidden(
                f"Your role may export {', '.join(plan.pii_fields)} only masked; {denied.detail}",
                fields=list(plan.pii_fields),
            )
            # The denial was audited by policy.require; an idempotency claim records it again.
            forbidden.denial = getattr(denied, "denial", None)  # type: ignore[attr-defined]
            raise forbidden from denied
        raise
    if unknown:
        raise ExportFieldUnknown(f"{len(unknown)} of the fields cannot be exported.", errors=unknown)
    if audience.state != AudienceState.PUBLISHED or audience.live_version_id is None:
        raise ExportAudienceNotPublished(
            f"{audience.name!r} has no live version (it is {audience.state}).",
            hint=f"Publish it first (POST /api/v1/audiences/{audience.pk}/publish), then export it.",
        )
    summary, change = "", {}
    if decision.needs_approval:
        members = audience.live_version.members if audience.live_version else 0
        summary = (
            f"Export {members or 0:,} members of {audience.name!r} with PII ({', '.join(plan.pii_fields) or 'no PII'}) "
            f"as {format}"
        )
        change = {
            "audience_id": audience.pk,
            "live_version": audience.live_version_id,
            "format": format,
            "fields": fields,
            "pii": True,
            "context": {},
        }
    return request_or_run(
        actor=actor,
        action=action,
        target=audience,
        decision=decision,
        summary=summary,
        change=change,
        fingerprint=export_fingerprint(audience) if decision.needs_approval else "",
        run=lambda: _export_now(actor, audience, action, decision, format, fields, plan.pii_fields, approval_refs),
    )


def _export_now(
    actor: Actor,
    audience: Audience,
    action: str,
    decision: policy.Decision,
    fmt: str,
    fields: list[str],
    pii_fields: tuple[str, ...],
    approval_refs: list[dict[str, Any]] | None,
) -> ExportStarted:
    user = cast("User", actor.user) if getattr(actor.user, "pk", None) else None
    with transaction.atomic():
        locked = Audience.objects.select_for_update(of=("self",)).get(pk=audience.pk)
        if locked.state != AudienceState.PUBLISHED or locked.live_version_id is None:
            raise ExportAudienceNotPublished(f"{locked.name!r} has no live version any more.")
        quota = quota_consume(actor, QUOTAS[action])
        export = Export.objects.create(
            environment=locked.environment,
            audience=locked,
            format=fmt,
            fields=fields,
            pii=action == CREATE_PII,
            created_by=user,
        )
        job = jobs.job_create(
            environment=locked.environment,
            kind=JOB_KIND,
            target=export,
            params={"export": export.pk, "audience": locked.pk},
            requested_by=user,
        )
        export.job = job
        export.save(update_fields=["job"])
        audit.record(
            actor,
            action,
            export,
            decision=decision,
            changes={
                "audience": locked.pk,
                "live_version": locked.live_version_id,
                "format": fmt,
                "fields": fields,
                "pii": export.pii,
                "pii_fields": list(pii_fields),
                "job": job.pk,
            },
            approval_refs=approval_refs or [],
        )
        enqueue_after_commit(job.pk)
    return ExportStarted(export=export, job=job, quota=quota)


def enqueue_after_commit(job_id: int) -> None:
    def kick() -> None:
        from audiences.tasks import export_task

        try:
            export_task.delay(job_id)
        except Exception:
            # The job stays queued; the exports sweep enqueues it again.
            logger.warning("could not enqueue export job %s; the sweep will run it", job_id, exc_info=True)

    transaction.on_commit(kick, robust=True)


def export_change_described(request: Any, audience: Audience) -> list[dict[str, Any]]:
    """What changed under a stale PII export request: the audience went live with another version."""
    requested = (request.change or {}).get("live_version")
    if requested == audience.live_version_id:
        return []
    return [{"field": "live_version", "requested": requested, "now": audience.live_version_id}]


def execute_export_pii(execution: Execution) -> dict[str, Any]:
    """An approved PII export: the requester's export runs (the approval rule is skipped)."""
    if execution.target is None:
        raise NotFound("The audience no longer exists.", code="audience_not_found")
    change = execution.change
    outcome = export_create(
        actor=execution.actor,
        audience=execution.target,
        format=change["format"],
        fields=list(change["fields"]),
        pii=True,
        context=execution.context,
        approval_refs=execution.approval_refs,
    )
    started = outcome.result
    assert started is not None  # an approved request runs
    return {"export": started.export.pk, "job": started.job.pk}


# --- download ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadLink:
    url: str
    expires_at: datetime


def _usable(export: Export, now: datetime) -> None:
    if export.state == ExportState.EXPIRED or (export.expires_at is not None and export.expires_at <= now):
        raise ExportExpired(f"Export {export.pk}'s file expired at {export.expires_at:%Y-%m-%d %H:%M} UTC.")
    if export.state != ExportState.READY:
        raise ExportNotReady(
            f"Export {export.pk} is {export.state}.",
            hint=f"Follow GET /api/v1/exports/{export.pk}; download it once its state is `ready`.",
        )


def export_download_link(*, actor: Actor, export: Export, now: datetime | None = None) -> DownloadLink:
    """A link to the export's file, signed for the actor: it expires after EXPORTS_LINK_HOURS
    (never after the file) and any change to it makes it invalid. Only the person who ran
    the export gets one (selectors.export_get_own)."""
    now = now or timezone.now()
    policy.require(actor, DOWNLOAD, export)
    _usable(export, now)
    expires = now + timedelta(hours=settings.EXPORTS_LINK_HOURS)
    if export.expires_at is not None:
        expires = min(expires, export.expires_at)
    user_id = actor.user.pk if actor.user is not None else None
    signature = signing.dumps({"e": export.pk, "u": user_id, "x": int(expires.timestamp())}, salt=LINK_SALT)
    return DownloadLink(url=f"/downloads/exports/{signature}", expires_at=expires)


def _link_payload(signature: str, now: datetime) -> dict[str, Any]:
    try:
        payload = signing.loads(signature, salt=LINK_SALT)
    except signing.BadSignature:
        raise ExportLinkInvalid("The link was changed or is not one of ours.") from None
    if not isinstance(payload, dict) or not {"e", "u", "x"} <= set(payload):
        raise ExportLinkInvalid("The link was changed or is not one of ours.")
    if now.timestamp() > float(payload["x"]):
        raise ExportLinkExpired("The download link has expired.")
    return payload


def export_download(
    *, signature: str, ip: str | None = None, request_id: str = "", now: datetime | None = None
) -> tuple[Export, Any]:
    """The export's file for a signed link: (export, an open binary file). The link says
    who it was made for; that person must still be active and hold a role. Every download
    is audited (`export.download`), in the export's environment."""
    now = now or timezone.now()
    payload = _link_payload(signature, now)
    export = Export.objects.select_related("environment").filter(pk=payload["e"]).first()
    if export is None:
        raise ExportNotFound(f"Export {payload['e']} no longer exists.")
    user = get_user_model().objects.filter(pk=payload["u"]).first() if payload["u"] is not None else None
    if payload["u"] is not None and user is None:
        raise ExportLinkInvalid("The person this link was made for no longer exists.")
    environment: Environment = export.environment
    actor = Actor(user=user, environment=environment, door=Door.API, ip=ip, request_id=request_id)
    decision = policy.require(actor, DOWNLOAD, export)
    _usable(export, now)
    if not storage.exists(export.file_name):
        raise ExportExpired(f"Export {export.pk}'s file is gone.")
    handle = storage.open_file(export.file_name)
    with transaction.atomic():
        audit.record(
            actor,
            DOWNLOAD,
            export,
            decision=decision,
            changes={"rows": export.rows, "size": export.size, "pii": export.pii, "format": export.format},
        )
    return export, handle


# --- expiry -----------------------------------------------------------------------------------


def exports_expire(*, now: datetime | None = None) -> int:
    """Delete the files of exports past their expiry and mark them `expired` (one UPDATE per
    environment, one audit event per environment); how many. Run by the periodic sweep."""
    now = now or timezone.now()
    due = list(
        Export.objects.filter(state=ExportState.READY, expires_at__lte=now)
        .select_related("environment")
        .order_by("id")[:1000]
    )
    by_environment: dict[int, list[Export]] = {}
    for export in due:
        by_environment.setdefault(export.environment_id, []).append(export)
    for exports in by_environment.values():
        environment = exports[0].environment
        actor = Actor.system(environment, door=Door.TASK, request_id="exports-expire")
        decision = policy.require(actor, EXPIRE)
        for export in exports:
            try:
                storage.delete(export.file_name)
            except OSError:
                logger.warning("could not delete the file of export %s", export.pk, exc_info=True)
        ids = [export.pk for export in exports]
        with transaction.atomic():
            Export.objects.filter(pk__in=ids, state=ExportState.READY).update(
                state=ExportState.EXPIRED, deleted_at=now, file_name=""
            )
            audit.record(
                actor, EXPIRE, None, decision=decision, changes={"exports": ids, "deleted_at": now.isoformat()}
            )
    storage.remove_stale_partials()
    return len(due)
