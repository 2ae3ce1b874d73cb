"""The formats of audit log exports for a SIEM: each event as JSON (the API's shape), as a
CSV row or as an OCSF 1.x "API Activity" record, rendered as a stream of text chunks.

The export itself — the policy check, its own `audit.export` event and the snapshot of
rows — is `audit_log_export` in governance/audit/services.py.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from governance.models import AuditEvent, Outcome
from marketerapi.problems import InvalidInput

# Rows rendered per chunk of the response body, so the server does not write line by line.
_LINES_PER_WRITE = 200

OCSF_VERSION = "1.3.0"
PRODUCT_NAME = "marketerapi"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _environment_slug(event: AuditEvent) -> str | None:
    # Selectors annotate the slug; an event loaded any other way costs one query here.
    if hasattr(event, "environment_slug"):
        return event.environment_slug
    environment = event.environment if event.environment_id else None  # no query for an event of none
    return environment.slug if environment is not None else None


def _token_prefix(event: AuditEvent) -> str | None:
    if hasattr(event, "token_prefix"):
        return event.token_prefix
    token = event.token if event.token_id else None
    return token.prefix if token is not None else None


def event_as_dict(event: AuditEvent) -> dict[str, Any]:
    """One event as the API lists it and the `jsonl` export writes it."""
    has_target = bool(event.target_type or event.target_id or event.target_label)
    return {
        "id": event.pk,
        "occurred_at": _iso(event.occurred_at),
        "environment": _environment_slug(event),
        "actor": event.actor_label,
        "token_prefix": _token_prefix(event),
        "door": event.door,
        "ip": event.ip,
        "request_id": event.request_id,
        "action": event.action,
        "target": {"type": event.target_type, "id": event.target_id, "label": event.target_label}
        if has_target
        else None,
        "outcome": event.outcome,
        "reasons": event.reasons,
        "changes": event.changes,
        "approval_refs": event.approval_refs,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
    }


# --- OCSF -------------------------------------------------------------------------

# OCSF "API Activity" (class 6003, category 6 "Application Activity"): the activity is
# read from the first word of the action's verb, e.g. audience.publish_requested → publish.
OCSF_ACTIVITIES: dict[str, tuple[int, str]] = {
    **dict.fromkeys(("create", "ingest", "issue", "add", "promote", "copy", "request"), (1, "Create")),
    **dict.fromkeys(("view", "read", "pii", "export", "preview", "validate", "download", "verify"), (2, "Read")),
    **dict.fromkeys(
        (
            "edit",
            "update",
            "change",
            "publish",
            "rollback",
            "share",
            "activate",
            "pause",
            "resume",
            "cancel",
            "approve",
            "reject",
            "sync",
            "reset",
            "enable",
            "disable",
            "schedule",
            "decide",
        ),
        (3, "Update"),
    ),
    **dict.fromkeys(("delete", "revoke", "archive", "remove"), (4, "Delete")),
}
_OTHER = (99, "Other")


def ocsf_activity(action: str) -> tuple[int, str]:
    verb = action.rsplit(".", 1)[-1].split("_", 1)[0]
    return OCSF_ACTIVITIES.get(verb, _OTHER)


def event_as_ocsf(event: AuditEvent) -> dict[str, Any]:
    """One event as an OCSF API Activity record; what OCSF has no place for goes to `unmapped`."""
    activity_id, activity_name = ocsf_activity(event.action)
    success = event.outcome in (Outcome.ALLOWED, Outcome.APPROVAL_REQUESTED)
    user: dict[str, Any] = {"name": event.actor_label}
    if event.actor_user_id is not None:
        user.update(uid=str(event.actor_user_id), type_id=1, type="User")
    else:
        user.update(type_id=3, type="System")
    api: dict[str, Any] = {"operation": event.action, "service": {"name": PRODUCT_NAME}}
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "uid": str(event.pk),
        "log_name": "audit",
        "original_time": _iso(event.occurred_at),
        "product": {"name": PRODUCT_NAME, "vendor_name": PRODUCT_NAME},
    }
    if event.request_id:
        api["request"] = {"uid": event.request_id}
        metadata["correlation_uid"] = event.request_id
    record: dict[str, Any] = {
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 6003 * 100 + activity_id,
        "type_name": f"API Activity: {activity_name}",
        "severity_id": 1,
        "severity": "Informational",
        "time": int(event.occurred_at.timestamp() * 1000),
        "status_id": 1 if success else 2,
        "status": "Success" if success else "Failure",
        "status_detail": event.outcome,
        "message": f"{event.actor_label} {event.action}: {event.outcome}",
        "metadata": metadata,
        "actor": {"user": user},
        "src_endpoint": {"ip": event.ip} if event.ip else {},
        "api": api,
        "unmapped": {
            "environment": _environment_slug(event),
            "door": event.door,
            "token_prefix": _token_prefix(event),
            "outcome": event.outcome,
            "reasons": event.reasons,
            "changes": event.changes,
            "approval_refs": event.approval_refs,
            "hash": event.hash,
            "prev_hash": event.prev_hash,
        },
    }
    if event.target_type or event.target_id or event.target_label:
        record["resources"] = [{"type": event.target_type, "uid": event.target_id, "name": event.target_label}]
    return record


# --- renderers --------------------------------------------------------------------


def _json_line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"


def _batched(lines: Iterable[str]) -> Iterator[str]:
    buffer: list[str] = []
    for line in lines:
        buffer.append(line)
        if len(buffer) >= _LINES_PER_WRITE:
            yield "".join(buffer)
            buffer = []
    if buffer:
        yield "".join(buffer)


def render_jsonl(events: Iterable[AuditEvent]) -> Iterator[str]:
    return _batched(_json_line(event_as_dict(event)) for event in events)


def render_ocsf(events: Iterable[AuditEvent]) -> Iterator[str]:
    return _batched(_json_line(event_as_ocsf(event)) for event in events)


CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "occurred_at",
    "environment",
    "actor",
    "token_prefix",
    "door",
    "ip",
    "request_id",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "outcome",
    "reasons",
    "changes",
    "approval_refs",
    "hash",
    "prev_hash",
)
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); audience names and labels are user input, so such cells get a leading '.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class _Line:
    """A file-like object whose write() returns the line, for csv.writer in a stream."""

    def write(self, value: str) -> str:
        return value


def render_csv(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Line())

    def lines() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for event in events:
            row = event_as_dict(event)
            target = row.pop("target") or {}
            row.update(target_type=target.get("type"), target_id=target.get("id"), target_label=target.get("label"))
            yield writer.writerow([_csv_cell(row[column]) for column in CSV_COLUMNS])

    return _batched(lines())


@dataclass(frozen=True)
class ExportFormat:
    name: str
    content_type: str
    extension: str
    description: str
    render: Callable[[Iterable[AuditEvent]], Iterator[str]]


EXPORT_FORMATS: dict[str, ExportFormat] = {
    "jsonl": ExportFormat(
        "jsonl", "application/x-ndjson", "jsonl", "one JSON object per line, as the list shows it", render_jsonl
    ),
    "csv": ExportFormat("csv", "text/csv; charset=utf-8", "csv", "one row per event, with a header row", render_csv),
    "ocsf": ExportFormat(
        "ocsf", "application/x-ndjson", "ocsf.jsonl", "one OCSF API Activity (6003) record per line", render_ocsf
    ),
}
DEFAULT_EXPORT_FORMAT = "jsonl"


def export_format_get(name: str) -> ExportFormat:
    try:
        return EXPORT_FORMATS[name]
    except KeyError:
        allowed = list(EXPORT_FORMATS)
        raise InvalidInput(
            f"{name!r} is not an export format.",
            code="invalid_export_format",
            title="Unknown export format",
            hint=f"Use format={', format='.join(allowed)}.",
            errors=[
                {
                    "pointer": "",
                    "parameter": "format",
                    "code": "invalid_choice",
                    "message": f"{name!r} is not an export format.",
                    "hint": f"Use one of: {', '.join(allowed)}.",
                }
            ],
            allowed_formats=allowed,
        ) from None
