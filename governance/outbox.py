"""`emit`: write a domain event to the outbox in the caller's transaction.

The outbox is the ground every app stands on: a service of any app emits here, and the
relay of integrations (integrations/outbox/relay.py) dispatches. After the transaction commits,
`events_committed` is sent once; integrations listens (its AppConfig.ready()) and kicks
the relay. A rolled-back transaction leaves neither the row nor the signal. A kick that is
lost (the process dies after the commit, the broker is down) costs only latency: the
relay's periodic sweep dispatches every undispatched row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection, connections, models, router, transaction
from django.dispatch import Signal
from django.utils import timezone

from governance.audit.trail import InsertColumns
from governance.models import Environment, OutboxEvent

# Sent once after a transaction that emitted events commits (no arguments but the sender).
events_committed = Signal()

EVENT_TYPES = frozenset(
    {
        "audience.published",
        "audience.rolled_back",
        # A published audience was archived: destinations stop syncing its members.
        "audience.archived",
        "consent.updated",
        "campaign.activated",
        "campaign.paused",
        "campaign.resumed",
        "campaign.cancelled",
        "campaign.scheduled",
        "campaign.completed",
        "campaign.partially_succeeded",
        "campaign.failed",
        "review_item.resolved",
        "export.completed",
        "approval.requested",
        "approval.decided",
        "flag.changed",
        "profiles.ingested",
        "sandbox.reset",
    }
)


class OutsideTransaction(RuntimeError):
    """emit() was called outside a transaction, so the event could outlive a rollback."""


def _check(event_type: str) -> None:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"{event_type!r} is not a domain event type; add it to EVENT_TYPES first")
    if not connection.in_atomic_block:
        raise OutsideTransaction("emit() must run inside the transaction of the change it describes")


def _announce() -> None:
    events_committed.send_robust(sender=OutboxEvent)


def _schedule_relay() -> None:
    """Announce the events once after the current transaction commits, however many it emits."""
    if any(entry[1] is _announce for entry in connection.run_on_commit):
        return
    transaction.on_commit(_announce, robust=True)


def emit(
    event_type: str,
    obj: models.Model | tuple[str, Any],
    payload: dict[str, Any],
    *,
    environment: Environment | None = None,
) -> OutboxEvent:
    """Record `event_type` about `obj` (a model instance or an (aggregate_type, id) pair)."""
    _check(event_type)
    if isinstance(obj, models.Model):
        aggregate_type, aggregate_id = obj._meta.label_lower, str(obj.pk)
        environment = environment or getattr(obj, "environment", None)
    else:
        aggregate_type, aggregate_id = obj[0], str(obj[1])
    if environment is None:
        raise ValueError("emit() needs the environment of the event")
    event = OutboxEvent.objects.create(
        environment=environment, type=event_type, aggregate_type=aggregate_type, aggregate_id=aggregate_id, data=payload
    )
    _schedule_relay()
    return event


# Rows per INSERT of emit_many.
BATCH_SIZE = 2000


def emit_many(event_type: str, environment: Environment, items: Iterable[tuple[str, Any, dict[str, Any]]]) -> int:
    """Record many events of one type in one INSERT: items are (aggregate_type, id, payload).

    What `bulk_create` would send, built directly: the caller gets a count, not the rows,
    so nothing needs their ids back, and a service that emits for one row (a consent
    sync of one profile) spends its time in the database, not in the ORM.
    """
    _check(event_type)
    db = connections[router.db_for_write(OutboxEvent)]
    if db.vendor != "postgresql":
        rows = [
            OutboxEvent(
                environment=environment, type=event_type, aggregate_type=kind, aggregate_id=str(ident), data=data
            )
            for kind, ident, data in items
        ]
        OutboxEvent.objects.bulk_create(rows, batch_size=BATCH_SIZE)
        if rows:
            _schedule_relay()
        return len(rows)
    columns = _columns()
    values = [
        {
            **_defaults(columns),
            "environment_id": environment.pk,
            "type": event_type,
            "aggregate_type": kind,
            "aggregate_id": str(ident),
            "data": data,
        }
        for kind, ident, data in items
    ]
    if not values:
        return 0
    quote = db.ops.quote_name
    # Identifiers come from the model; every value is a parameter.
    names = ", ".join(quote(name) for name in columns.columns)
    head = f"INSERT INTO {quote(OutboxEvent._meta.db_table)} ({names}) VALUES "  # noqa: S608
    with db.cursor() as cursor:
        for start in range(0, len(values), BATCH_SIZE):
            batch = values[start : start + BATCH_SIZE]
            params = [param for row in batch for param in columns.params(row, db)]
            cursor.execute(head + ", ".join([columns.placeholders] * len(batch)), params)
    _schedule_relay()
    return len(values)


_COLUMNS: InsertColumns | None = None


def _columns() -> InsertColumns:
    global _COLUMNS
    if _COLUMNS is None:
        _COLUMNS = InsertColumns(OutboxEvent)
    return _COLUMNS


def _defaults(columns: InsertColumns) -> dict[str, Any]:
    """Each column's default, as OutboxEvent() would set it (a new event_id, occurred_at now)."""
    out = {}
    for field in columns.fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            out[field.attname] = timezone.now()
        else:
            out[field.attname] = field.get_default()
    return out
