"""The hash chain of the audit trail: what a row's hash covers, and its verification.

Audit events are hash-chained per environment: each row stores the previous row's hash
(`prev_hash`, GENESIS for an environment's first row) and SHA-256 over its own canonical
JSON (`canonical_json`: the CHAINED_FIELDS, sorted keys, no spaces), so `check_chain` (and
`audit_verify`, `GET /audit-events/verify`) finds any altered, removed or reordered row.
Writing a row — taking the chain's head under a lock — is governance/audit/trail.py.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet

from governance.audit.errors import ChainWriteError
from governance.models import AuditEvent

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


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def canonical_json(event: AuditEvent) -> str:
    body = {name: _canonical_value(getattr(event, name)) for name in CHAINED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(canonical_json(event).encode()).hexdigest()


def chain_of(environment_id: int | None) -> QuerySet[AuditEvent]:
    """The events of one environment's chain (`None`: the events of no environment)."""
    if environment_id is None:
        return AuditEvent.objects.filter(environment__isnull=True)
    return AuditEvent.objects.filter(environment_id=environment_id)


_PREV_KEY = '"prev_hash":"'


def split_canonical(event: AuditEvent) -> tuple[str, str]:
    """The canonical JSON of `event` cut where the value of `prev_hash` goes: the hashed
    text is `head + prev_hash + tail`, exactly canonical_json() with that prev_hash."""
    marker = secrets.token_hex(16)
    event.prev_hash = marker
    text = canonical_json(event)
    event.prev_hash = ""
    slot = _PREV_KEY + marker + '"'
    # Only the real key can match: inside a JSON string every quote is escaped.
    if text.count(slot) != 1:  # pragma: no cover - a 128-bit random marker does not repeat
        raise ChainWriteError("could not place prev_hash in the canonical JSON")
    start = text.index(slot) + len(_PREV_KEY)
    return text[:start], text[start + len(marker) :]


@dataclass(frozen=True)
class ChainBreak:
    environment_id: int | None
    event_id: int
    reason: str


def verify_chain(environment_id: int | None = None, *, all_environments: bool = False) -> Iterator[ChainBreak]:
    """Yield the first broken row of each chain checked (none when intact)."""
    if all_environments:
        # order_by(): the model's ordering (-id) would otherwise join the DISTINCT.
        env_ids: list[int | None] = list(
            AuditEvent.objects.order_by().values_list("environment_id", flat=True).distinct()
        )
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
    chain = chain_of(environment_id)
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
