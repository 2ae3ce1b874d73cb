"""The audit trail's one service: `audit_log_export`, which checks the policy, records the
export as one `audit.export` event and returns the rows as a stream in the chosen format
(governance/audit/exports.py).

An export is a snapshot: it holds the matching events up to the newest one at the time
of the request, oldest first, so an unfiltered export can be checked link by link
against `prev_hash`, and the export's own `audit.export` event is the first one after it.
Recording itself (every service's one event) is governance/audit/trail.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from governance import policy
from governance.actors import Actor
from governance.audit import trail as audit
from governance.audit.exports import DEFAULT_EXPORT_FORMAT, ExportFormat, export_format_get
from governance.audit.selectors import audit_events_visible, audit_filters_parse

# Rows fetched per round trip while streaming; a row is about 1 kB.
EXPORT_CHUNK_SIZE = 2000


@dataclass(frozen=True)
class AuditExport:
    format: ExportFormat
    filename: str
    events: int
    chunks: Iterator[str]


def audit_log_export(*, actor: Actor, params: Mapping[str, Any]) -> AuditExport:
    """Export the audit events the actor may read that match `params` (the list's filters
    and `format`), oldest first; one `audit.export` event records who exported what.

    The rows are read lazily, `EXPORT_CHUNK_SIZE` at a time, as the caller consumes
    `chunks`: memory stays flat however long the log is.
    """
    decision = policy.require(actor, "audit.export")
    export_format = export_format_get(str(params.get("format") or DEFAULT_EXPORT_FORMAT))
    filters = audit_filters_parse(params, extra_parameters=("format",))
    events = audit_events_visible(actor=actor, filters=filters)
    snapshot = events.aggregate(up_to=Max("id"), events=Count("id"))
    up_to, count = snapshot["up_to"], snapshot["events"]
    with transaction.atomic():
        audit.record(
            actor,
            "audit.export",
            ("governance.auditevent", "", f"audit log export ({export_format.name}, {count:,} events)"),
            decision=decision,
            changes={"format": export_format.name, "filters": filters.as_dict(), "events": count, "up_to_id": up_to},
        )
    rows = events.filter(id__lte=up_to) if up_to is not None else events.none()
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return AuditExport(
        format=export_format,
        filename=f"audit-{actor.environment.slug}-{stamp}.{export_format.extension}",
        events=count,
        chunks=export_format.render(rows.order_by("id").iterator(chunk_size=EXPORT_CHUNK_SIZE)),
    )
