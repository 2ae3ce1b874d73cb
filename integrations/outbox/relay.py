"""The outbox relay: undispatched OutboxEvent rows → one WebhookDelivery per subscriber.

Safe to run in any number of workers and to kill at any point. `relay_outbox` claims
undispatched events in id order, in batches (`SELECT … FOR UPDATE SKIP LOCKED` on
PostgreSQL; SQLite has one writer, so a plain claim), creates one WebhookDelivery per
matching active subscription of the event's environment (unique per subscription and
event, so a second run adds nothing) and marks the events dispatched, all in one
transaction. A worker that dies before the commit leaves the rows undispatched for the
next run. An event whose fan-out keeps failing goes to a DeadLetter after
MAX_DISPATCH_ATTEMPTS.

Sending the deliveries is integrations/webhooks/delivery.py. Triggers:
`governance.outbox.emit` announces its events after their transaction commits
(integrations/apps.py kicks the relay then); the relay kicks the deliveries after its own
commit; Celery beat sweeps both periodically (CELERY_BEAT_SCHEDULE), so a lost kick only
costs latency.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from governance.models import OutboxEvent
from integrations.models import DeadLetter, SubscriptionState, WebhookDelivery, WebhookSubscription
from integrations.webhooks.dead_letters import OUTBOX_DISPATCH

logger = logging.getLogger("marketerapi.relay")

# --- the numbers (docs/webhooks.md shows them as a table) ----------------------------

RELAY_BATCH = 500
MAX_DISPATCH_ATTEMPTS = 5


def skip_locked() -> bool:
    """Can claims skip the rows another worker holds (PostgreSQL), or is there one writer (SQLite)?"""
    return bool(connection.features.has_select_for_update_skip_locked)


def asynchronous_commit() -> None:
    """Let this transaction's commit return before its WAL is flushed (PostgreSQL).

    Only for the dispatcher's own bookkeeping (the relay's fan-outs, the deliveries' claims
    and results): a database crash may then forget the last fraction of a second of them,
    which means work is done again (at least once, same event id), never lost or
    corrupted. It halves the cost of a batch.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


# --- kicks ------------------------------------------------------------------------


# Kicks coalesce: while one relay task waits in the queue for a worker, later commits add
# nothing to the queue (that relay will see their events, committed before it claims); the
# relay clears the mark as it starts, so a commit after that kicks again. The mark expires
# with the sweep's period, so a lost task costs no more than the sweep would.
KICK_PENDING_KEY = "marketerapi:outbox:relay-kick-pending"
KICK_PENDING_SECONDS = 10


def kick_relay() -> None:
    """Ask a worker to run the relay now (after a commit that emitted events)."""
    from integrations.tasks import relay_outbox_task

    client = _kick_store()
    try:
        if client is not None and not client.set(KICK_PENDING_KEY, "1", nx=True, ex=KICK_PENDING_SECONDS):
            return  # a relay task is already waiting for a worker
    except Exception:
        client = None  # Redis did not answer: kick anyway
    try:
        relay_outbox_task.delay()
    except Exception:
        # The commit stands; the periodic sweep dispatches the events.
        logger.warning("could not kick the outbox relay; the periodic sweep will dispatch", exc_info=True)
        kick_taken(client)


def kick_taken(client: Any = None) -> None:
    """A relay is starting (or its kick failed): the next commit kicks again."""
    client = client or _kick_store()
    if client is None:
        return
    try:
        client.delete(KICK_PENDING_KEY)
    except Exception:
        logger.warning("could not clear the relay's kick mark; it expires by itself", exc_info=True)


def _kick_store() -> Any:
    """Redis, when kicks go through a broker to other processes; None in-process (the
    relay then runs inside the kick, and there is nothing to coalesce)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    from integrations.destinations.breakers import redis_client

    return redis_client()


def _kick_deliveries() -> None:
    from integrations.webhooks import delivery

    delivery.kick_deliveries()


# --- the relay --------------------------------------------------------------------


@dataclass
class RelayOutcome:
    events: int = 0
    deliveries: int = 0
    failed: int = 0
    dead_lettered: int = 0
    batches: int = 0

    def add(self, other: RelayOutcome) -> None:
        for name in ("events", "deliveries", "failed", "dead_lettered", "batches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _claim_events(batch_size: int, only: list[int] | None = None) -> list[OutboxEvent]:
    pending = OutboxEvent.objects.filter(dispatched_at__isnull=True)
    if only is not None:
        pending = pending.filter(pk__in=only)
    pending = pending.order_by("id").only("id", "environment_id", "type", "aggregate_type", "aggregate_id", "attempts")
    if skip_locked():
        pending = pending.select_for_update(skip_locked=True)
    return list(pending[:batch_size])


def _fan_out(events: list[OutboxEvent]) -> int:
    """Create the deliveries of `events` (idempotent); the number of (new or existing) rows."""
    env_ids = {event.environment_id for event in events}
    subscriptions: dict[int, list[WebhookSubscription]] = defaultdict(list)
    for sub in WebhookSubscription.objects.filter(environment_id__in=env_ids, state=SubscriptionState.ACTIVE).only(
        "id", "environment_id", "event_types"
    ):
        subscriptions[sub.environment_id].append(sub)
    rows = [
        WebhookDelivery(subscription_id=sub.pk, event_id=event.pk)
        for event in events
        for sub in subscriptions.get(event.environment_id, ())
        if event.type in sub.event_types
    ]
    if rows:
        WebhookDelivery.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)


def relay_batch(*, batch_size: int = RELAY_BATCH, now: datetime | None = None) -> RelayOutcome:
    """Claim and fan out one batch of undispatched events, in id order."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            asynchronous_commit()
            events = _claim_events(batch_size)
            if not events:
                return RelayOutcome()
            created = _fan_out(events)
            OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(
                dispatched_at=now, attempts=F("attempts") + 1, last_error=""
            )
            if created:
                transaction.on_commit(_kick_deliveries, robust=True)
        return RelayOutcome(events=len(events), deliveries=created, batches=1)
    except Exception:
        logger.exception("outbox relay batch failed; retrying its events one by one")
    return _relay_one_by_one(batch_size, now)


def _relay_one_by_one(batch_size: int, now: datetime) -> RelayOutcome:
    """The slow path after a failed batch: each event alone, so one bad event neither
    blocks the others nor is retried for ever."""
    outcome = RelayOutcome(batches=1)
    with transaction.atomic():
        ids = [event.pk for event in _claim_events(batch_size)]
    for event_id in ids:
        try:
            with transaction.atomic():
                claimed = _claim_events(1, only=[event_id])
                if not claimed:
                    continue  # another worker has it, or it is done
                created = _fan_out(claimed)
                OutboxEvent.objects.filter(pk=event_id).update(
                    dispatched_at=now, attempts=F("attempts") + 1, last_error=""
                )
                if created:
                    transaction.on_commit(_kick_deliveries, robust=True)
            outcome.events += 1
            outcome.deliveries += created
        except Exception as exc:
            outcome.failed += 1
            if _record_dispatch_failure(event_id, f"{type(exc).__name__}: {exc}", now):
                outcome.dead_lettered += 1
    return outcome


def _record_dispatch_failure(event_id: int, error: str, now: datetime) -> bool:
    """Count a failed dispatch; after MAX_DISPATCH_ATTEMPTS the event becomes a dead letter
    (and counts as dispatched, so it no longer holds up its aggregate). True when dead."""
    with transaction.atomic():
        event = OutboxEvent.objects.select_for_update().select_related("environment").filter(pk=event_id).first()
        if event is None or event.dispatched_at is not None:
            return False
        event.attempts += 1
        event.last_error = error[:2000]
        fields = ["attempts", "last_error"]
        dead = event.attempts >= MAX_DISPATCH_ATTEMPTS
        if dead:
            event.dispatched_at = now
            fields.append("dispatched_at")
            DeadLetter.objects.create(
                environment_id=event.environment_id,
                kind=OUTBOX_DISPATCH,
                reference_id=str(event.pk),
                payload={"event_id": event.public_id, "event_type": event.type, "outbox_event_id": event.pk},
                attempts=event.attempts,
                last_error=event.last_error,
                created_at=now,
            )
            logger.error("outbox event %s dead-lettered after %s attempts: %s", event.pk, event.attempts, error)
        event.save(update_fields=fields)
    return dead


def relay_outbox(
    *,
    batch_size: int = RELAY_BATCH,
    max_batches: int | None = None,
    time_budget: float | None = None,
    now: datetime | None = None,
) -> RelayOutcome:
    """Relay batches until none is left (or the budget is spent)."""
    total = RelayOutcome()
    started = time.monotonic()
    while True:
        outcome = relay_batch(batch_size=batch_size, now=now)
        total.add(outcome)
        # Drained, or an event failed: the next sweep retries it, so its attempts are
        # spread over time instead of spent in one loop.
        if outcome.events < batch_size or outcome.failed:
            break
        if max_batches is not None and total.batches >= max_batches:
            break
        if time_budget is not None and time.monotonic() - started > time_budget:
            break
    return total
