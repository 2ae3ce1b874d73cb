"""`emit`: write a domain event to the outbox in the caller's transaction.

After that transaction commits, the relay (integrations/relay.py) is kicked to dispatch
it; a rolled-back transaction leaves neither the row nor the kick. A kick that is lost
(the process dies after the commit, the broker is down) costs only latency: the relay's
periodic sweep dispatches every undispatched row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection, models, transaction

from governance.models import Environment
from integrations.models import OutboxEvent

EVENT_TYPES = frozenset(
    {
        "audience.published",
        "audience.rolled_back",
        # A published audience was archived: destinations stop syncing its members.
        "audience.archived",
        "consent.updated",
        "campaign.activated",
        "campaign.paused",
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


def _kick_relay() -> None:
    from integrations import relay

    relay.kick_relay()


def _schedule_relay() -> None:
    """Kick the relay once after the current transaction commits, however many events it emits."""
    if any(func is _kick_relay for _, func, _ in connection.run_on_commit):
        return
    transaction.on_commit(_kick_relay, robust=True)


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


def emit_many(event_type: str, environment: Environment, items: Iterable[tuple[str, Any, dict[str, Any]]]) -> int:
    """Record many events of one type in one INSERT: items are (aggregate_type, id, payload)."""
    _check(event_type)
    rows = [
        OutboxEvent(environment=environment, type=event_type, aggregate_type=kind, aggregate_id=str(ident), data=data)
        for kind, ident, data in items
    ]
    OutboxEvent.objects.bulk_create(rows, batch_size=2000)
    if rows:
        _schedule_relay()
    return len(rows)
