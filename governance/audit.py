"""The one audit point: every state-changing service writes exactly one AuditEvent.

Audit events are append-only (a PostgreSQL trigger refuses UPDATE, DELETE and
TRUNCATE) and hash-chained per environment: each row stores the previous row's hash
and SHA-256 over its own canonical JSON, so `audit_verify` finds any altered,
removed or reordered row.

A chain serializes its writers. On PostgreSQL the writer takes a per-environment
advisory lock just before the insert; the lock is released at commit. Services
therefore record the audit event as the last write of their transaction, which keeps
the critical section to the insert and the commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import connection, models
from django.utils import timezone

from governance.models import AuditEvent, Outcome

if TYPE_CHECKING:
    from governance.actors import Actor
    from governance.policy import Decision

# First key of the two-key advisory lock; the second is the environment id.
_LOCK_CLASS = 0x4D4B4155  # "MKAU"
GENESIS = "0" * 64

CHAINED_FIELDS = (
    "occurred_at",
    "environment_id",
    "actor_user_id",
    "actor_label",
    "token_id",
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
    "prev_hash",
)


def describe_target(target: Any) -> tuple[str, str, str]:
    """(type, id, label) of a model instance, a (type, id, label) tuple, or nothing."""
    if target is None:
        return "", "", ""
    if isinstance(target, tuple):
        kind, ident, label = target
        return str(kind), str(ident), str(label)[:200]
    if isinstance(target, models.Model):
        return target._meta.label_lower, str(target.pk), str(target)[:200]
    return type(target).__name__.lower(), "", str(target)[:200]


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def canonical_json(event: AuditEvent) -> str:
    body = {name: _canonical_value(getattr(event, name)) for name in CHAINED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(canonical_json(event).encode()).hexdigest()


def _previous_hash(environment_id: int | None) -> str:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, environment_id or 0])
    last = (
        AuditEvent.objects.filter(environment_id=environment_id).order_by("-id").values_list("hash", flat=True).first()
    )
    return last or GENESIS


def record(
    actor: Actor,
    action: str,
    target: Any = None,
    *,
    outcome: str = Outcome.ALLOWED,
    decision: Decision | None = None,
    reasons: list[str] | None = None,
    changes: dict[str, Any] | None = None,
    approval_refs: list[Any] | None = None,
) -> AuditEvent:
    """Write one audit event in the caller's transaction (make it the transaction's last write)."""
    target_type, target_id, target_label = describe_target(target)
    all_reasons = list(reasons or [])
    if decision is not None:
        all_reasons = [*decision.reasons, *all_reasons]
    # Round-trip JSON now so the hashed value is exactly what the database returns.
    event = AuditEvent(
        occurred_at=timezone.now(),
        environment=actor.environment,
        actor_user=actor.user,
        actor_label=actor.label,
        token=actor.token,
        door=actor.door,
        ip=actor.ip,
        request_id=actor.request_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        outcome=outcome,
        reasons=json.loads(json.dumps(all_reasons, default=str)),
        changes=json.loads(json.dumps(changes or {}, default=str)),
        approval_refs=json.loads(json.dumps(approval_refs or [], default=str)),
    )
    event.prev_hash = _previous_hash(event.environment_id)
    event.hash = compute_hash(event)
    event.save(force_insert=True)
    return event


class AppendOnly(Exception):
    """Audit events are never changed or deleted."""


@dataclass(frozen=True)
class ChainBreak:
    environment_id: int | None
    event_id: int
    reason: str


def verify_chain(environment_id: int | None = None, *, all_environments: bool = False) -> Iterator[ChainBreak]:
    """Yield the first broken row of each chain checked (none when intact)."""
    if all_environments:
        env_ids = list(AuditEvent.objects.values_list("environment_id", flat=True).distinct())
    else:
        env_ids = [environment_id]
    for env_id in env_ids:
        report = check_chain(env_id)
        if report.first_broken is not None:
            yield report.first_broken


@dataclass(frozen=True)
class ChainReport:
    """One environment's chain, walked from its first row: how many rows were checked
    (up to and including the first broken one) and, when intact, its newest row."""

    environment_id: int | None
    checked: int
    first_broken: ChainBreak | None
    head_id: int | None = None
    head_hash: str = ""

    @property
    def valid(self) -> bool:
        return self.first_broken is None


def check_chain(environment_id: int | None, *, from_id: int | None = None) -> ChainReport:
    """Walk one environment's chain in id order and stop at the first broken row.

    `from_id` starts the walk at that row, taking its `prev_hash` as given: after a
    break has been investigated and recorded, it checks the rows written since.
    A chain cannot show that its newest rows were removed; compare `head_hash` with a
    copy kept elsewhere (a SIEM that receives the exports) for that.
    """
    expected_prev = GENESIS
    checked = 0
    head: AuditEvent | None = None
    chain = AuditEvent.objects.filter(environment_id=environment_id)
    if from_id is not None:
        chain = chain.filter(id__gte=from_id)
        expected_prev = chain.order_by("id").values_list("prev_hash", flat=True).first() or GENESIS
    rows = chain.order_by("id").iterator(chunk_size=2000)
    for event in rows:
        checked += 1
        if event.prev_hash != expected_prev:
            reason = "prev_hash does not match the previous row: a row was removed or reordered"
            return ChainReport(environment_id, checked, ChainBreak(environment_id, event.pk, reason))
        if compute_hash(event) != event.hash:
            reason = "the row's content does not match its hash: it was altered"
            return ChainReport(environment_id, checked, ChainBreak(environment_id, event.pk, reason))
        expected_prev = event.hash
        head = event
    return ChainReport(environment_id, checked, None, head.pk if head else None, head.hash if head else "")
