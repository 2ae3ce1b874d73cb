"""`emit`: write a domain event to the outbox in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection, models

from governance.models import Environment
from integrations.models import OutboxEvent

EVENT_TYPES = frozenset(
    {
        "audience.published",
        "audience.rolled_back",
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
    return OutboxEvent.objects.create(
        environment=environment, type=event_type, aggregate_type=aggregate_type, aggregate_id=aggregate_id, data=payload
    )


def emit_many(event_type: str, environment: Environment, items: Iterable[tuple[str, Any, dict[str, Any]]]) -> int:
    """Record many events of one type in one INSERT: items are (aggregate_type, id, payload)."""
    _check(event_type)
    rows = [
        OutboxEvent(environment=environment, type=event_type, aggregate_type=kind, aggregate_id=str(ident), data=data)
        for kind, ident, data in items
    ]
    OutboxEvent.objects.bulk_create(rows, batch_size=2000)
    return len(rows)
