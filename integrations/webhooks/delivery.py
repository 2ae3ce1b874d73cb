"""Webhook delivery: due WebhookDelivery rows → signed HTTP POSTs, at least once.

Safe to run in any number of workers and to kill at any point. `deliver_webhooks` claims
due pending deliveries, counting the attempt and leasing them (`lease_for`: as long as
sending them could take) in the claim's transaction, then POSTs them outside any
transaction with explicit connect/read timeouts (WEBHOOK_CONNECT_TIMEOUT,
WEBHOOK_READ_TIMEOUT, WEBHOOK_CONCURRENCY threads), then records
each result (the delivery log, the next attempt with exponential backoff and full jitter
honouring Retry-After, or the dead letter after MAX_ATTEMPTS). A worker that dies after
the claim leaves a lease that runs out; the attempt counts, so work that kills workers
still ends in the dead-letter list. A worker that dies after the POST but before
recording sends the event again later: receivers deduplicate by event id.

Ordering per aggregate: a delivery is not claimed while an earlier delivery for the same
aggregate and subscription is pending, nor while an earlier event of the same aggregate
is still undispatched. (Services change one aggregate under its row lock, so for one
aggregate id order is commit order.)

The deliveries are created by the outbox relay (integrations/outbox/relay.py), which
kicks `deliver_webhooks` after its commit; Celery beat sweeps it every few seconds.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from governance.models import DataKind, OutboxEvent
from integrations.models import (
    DeadLetter,
    DeliveryAttempt,
    DeliveryState,
    SubscriptionState,
    WebhookDelivery,
    WebhookSubscription,
)
from integrations.outbox.relay import asynchronous_commit, skip_locked
from integrations.webhooks import sending, signing
from integrations.webhooks import services as webhooks
from integrations.webhooks.dead_letters import WEBHOOK_DELIVERY
from integrations.webhooks.errors import SecretUnreadable
from integrations.webhooks.sending import AttemptResult, Claimed

logger = logging.getLogger("marketerapi.relay")

# --- the numbers (docs/webhooks.md shows them as a table) ----------------------------

DELIVERY_BATCH = 100
MAX_ATTEMPTS = 8
# Full jitter: the wait after attempt n is uniform in [0, min(BASE · FACTOR^(n-1), MAX_GAP)].
# The caps add up to about 45 h, so the 8 attempts span about a day on average.
BACKOFF_BASE = 60.0
BACKOFF_FACTOR = 5.0
BACKOFF_MAX_GAP = 16 * 3600.0
MIN_GAP = 1.0
# How long claimed deliveries are held for their worker (lease_for): as long as sending them
# could take at worst, and never longer than LEASE, so that a killed worker's deliveries are
# retried as soon as that worker could no longer be sending them.
LEASE = timedelta(minutes=5)
LEASE_MARGIN = timedelta(seconds=10)


def lease_for(count: int) -> timedelta:
    """The lease of a claim of `count` deliveries: every request waiting out its connect and
    read timeouts, `sending.concurrency()` at a time, plus a margin for recording; at most LEASE."""
    rounds = -(-max(1, count) // max(1, sending.concurrency()))
    worst = timedelta(seconds=rounds * (sending.connect_timeout() + sending.read_timeout())) + LEASE_MARGIN
    return min(worst, LEASE)


def kick_deliveries() -> None:
    """Ask a worker to send due webhook deliveries now."""
    from integrations.tasks import deliver_webhooks_task

    try:
        deliver_webhooks_task.delay()
    except Exception:
        logger.warning("could not kick webhook deliveries; the periodic sweep will send them", exc_info=True)


def retry_delay(attempt: int, retry_after: float | None = None, *, rng: random.Random | None = None) -> timedelta:
    """The wait after failed attempt number `attempt` (1-based): full jitter under an
    exponential cap, and never shorter than the receiver's Retry-After (itself capped)."""
    cap = min(BACKOFF_BASE * BACKOFF_FACTOR ** (attempt - 1), BACKOFF_MAX_GAP)
    delay = (rng or random).uniform(0, cap)
    if retry_after is not None:
        delay = max(delay, min(retry_after, BACKOFF_MAX_GAP))
    return timedelta(seconds=max(delay, MIN_GAP))


@dataclass
class DeliveryOutcome:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    dead_lettered: int = 0
    paused: list[int] = field(default_factory=list)
    batches: int = 0

    def add(self, other: DeliveryOutcome) -> None:
        for name in ("claimed", "succeeded", "failed", "dead_lettered", "batches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.paused += other.paused

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def event_body(event: OutboxEvent) -> bytes:
    """The exact bytes that are signed and sent: the public event as compact JSON."""
    return json.dumps(event.as_public(), separators=(",", ":"), ensure_ascii=False).encode()


# Claims of deliveries take turns (a transaction-scoped advisory lock, held for the few
# milliseconds of the claim): then each claim sees every other claim's leases, which is
# what keeps one aggregate's deliveries in order across workers. The sends still run in
# parallel in every worker.
_CLAIM_LOCK = (0x4D4B5748, 1)  # "MKWH"
CLAIM_PAGES = 5


def _take_claim_turn() -> None:
    if connection.vendor == "postgresql":
        asynchronous_commit()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(_CLAIM_LOCK))


@dataclass(frozen=True)
class _Due:
    """A due delivery as the claim reads it (plain values: thousands a second are read)."""

    id: int
    attempts: int
    last_error: str
    subscription_id: int
    environment_id: int
    url: str
    secret_encrypted: str
    failing_since: datetime | None
    event_id: int
    event_uuid: Any
    event_type: str
    occurred_at: datetime
    data: Any
    aggregate_type: str
    aggregate_id: str
    environment_slug: str
    environment_data_kind: str

    @property
    def public_event_id(self) -> str:
        return f"evt_{self.event_uuid.hex}"

    def body(self) -> bytes:
        # The same shape as OutboxEvent.as_public(), built without loading the model.
        public = {
            "id": self.public_event_id,
            "type": self.event_type,
            "occurred_at": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "environment": self.environment_slug,
            "data": self.data,
        }
        return json.dumps(public, separators=(",", ":"), ensure_ascii=False).encode()


_DUE_FIELDS = (
    "id",
    "attempts",
    "last_error",
    "subscription_id",
    "subscription__environment_id",
    "subscription__url",
    "subscription__secret_encrypted",
    "subscription__failing_since",
    "event_id",
    "event__event_id",
    "event__type",
    "event__occurred_at",
    "event__data",
    "event__aggregate_type",
    "event__aggregate_id",
    "event__environment__slug",
    "subscription__environment__data_kind",
)


def _due(now: datetime, after: tuple[int, int] = (0, 0), limit: int = DELIVERY_BATCH) -> list[_Due]:
    """Due pending deliveries of active subscriptions, oldest event first, after `after`
    ((event id, delivery id), for paging); locked for this claim where the database can."""
    event_id, delivery_id = after
    due = (
        WebhookDelivery.objects.filter(
            state=DeliveryState.PENDING,
            next_attempt_at__lte=now,
            subscription__state=SubscriptionState.ACTIVE,
        )
        .filter(Q(event_id__gt=event_id) | Q(event_id=event_id, id__gt=delivery_id))
        .order_by("event_id", "id")
    )
    if skip_locked():
        due = due.select_for_update(skip_locked=True, of=("self",))
    return [_Due(*row) for row in due.values_list(*_DUE_FIELDS)[:limit]]


AggregateKey = tuple[str, str]


def _earliest_blockers(candidates: list[_Due], now: datetime) -> tuple[dict[Any, int], dict[AggregateKey, int]]:
    """What holds candidates back, for their aggregates only:

    - per (subscription, aggregate), the earliest event id of a pending delivery that is not
      due (backing off, or leased by a worker that is sending it now);
    - per aggregate, the earliest event id still undispatched (its fan-out has not committed).
    """
    subs = {d.subscription_id for d in candidates}
    aggregates = {(d.aggregate_type, d.aggregate_id) for d in candidates}
    ids = {agg_id for _, agg_id in aggregates}
    held: dict[Any, int] = {}
    for sub_id, agg_type, agg_id, event_id in WebhookDelivery.objects.filter(
        state=DeliveryState.PENDING,
        next_attempt_at__gt=now,
        subscription_id__in=subs,
        event__aggregate_id__in=ids,
    ).values_list("subscription_id", "event__aggregate_type", "event__aggregate_id", "event_id"):
        key = (sub_id, agg_type, agg_id)
        if (agg_type, agg_id) in aggregates and event_id < held.get(key, event_id + 1):
            held[key] = event_id
    undispatched: dict[AggregateKey, int] = {}
    for agg_type, agg_id, event_id in OutboxEvent.objects.filter(
        dispatched_at__isnull=True, aggregate_id__in=ids
    ).values_list("aggregate_type", "aggregate_id", "id"):
        if (agg_type, agg_id) in aggregates and event_id < undispatched.get((agg_type, agg_id), event_id + 1):
            undispatched[(agg_type, agg_id)] = event_id
    return held, undispatched


def _claim_deliveries(now: datetime, limit: int) -> tuple[list[Claimed], int]:
    """Claim up to `limit` due deliveries: count the attempt and lease them, in one transaction.

    Of one aggregate, only the earliest pending delivery per subscription is claimed, and
    only once every earlier event of that aggregate is dispatched. Returns the claimed
    deliveries and how many were dead-lettered instead (their last attempt was claimed by
    a worker that never reported back).
    """
    with transaction.atomic():
        _take_claim_turn()
        chosen: list[_Due] = []
        exhausted: list[_Due] = []
        taken: set[Any] = set()
        after = (0, 0)
        for _ in range(CLAIM_PAGES):
            page = _due(now, after, limit)
            if not page:
                break
            after = (page[-1].event_id, page[-1].id)
            held, undispatched = _earliest_blockers(page, now)
            for d in page:
                key = (d.subscription_id, d.aggregate_type, d.aggregate_id)
                if key in taken:
                    continue  # an earlier event of this aggregate goes first (this page, or an earlier one)
                taken.add(key)
                if held.get(key, d.event_id) < d.event_id:
                    continue  # an earlier one is backing off or in flight
                if undispatched.get(key[1:], d.event_id) < d.event_id:
                    continue  # an earlier event of the aggregate is not fanned out yet
                (exhausted if d.attempts >= MAX_ATTEMPTS else chosen).append(d)
            if len(chosen) + len(exhausted) >= limit or len(page) < limit:
                break
        chosen = chosen[:limit]
        for d in exhausted:
            _dead_letter_exhausted(d, now)
        if chosen:
            WebhookDelivery.objects.filter(pk__in=[d.id for d in chosen]).update(
                attempts=F("attempts") + 1, next_attempt_at=now + lease_for(len(chosen))
            )
    claimed = [
        Claimed(
            delivery_id=d.id,
            attempt=d.attempts + 1,
            subscription_id=d.subscription_id,
            environment_id=d.environment_id,
            url=d.url,
            secret_encrypted=d.secret_encrypted,
            failing_since=d.failing_since,
            event_public_id=d.public_event_id,
            event_type=d.event_type,
            body=d.body(),
            sandbox=d.environment_data_kind == DataKind.SYNTHETIC,
        )
        for d in chosen
    ]
    return claimed, len(exhausted)


def _dead_letter(
    *, environment_id: int, delivery_id: int, attempts: int, error: str, now: datetime, **about: Any
) -> None:
    """The dead letter of a delivery whose last attempt failed (`about`: what to show with it)."""
    DeadLetter.objects.create(
        environment_id=environment_id,
        kind=WEBHOOK_DELIVERY,
        reference_id=str(delivery_id),
        payload={"delivery_id": delivery_id, **about},
        attempts=attempts,
        last_error=error[:2000],
        created_at=now,
    )


def _dead_letter_exhausted(d: _Due, now: datetime) -> None:
    """A delivery whose last attempt was claimed by a worker that never reported back."""
    error = d.last_error or "The worker stopped during the last attempt and never reported back."
    WebhookDelivery.objects.filter(pk=d.id).update(state=DeliveryState.DEAD, last_error=error[:2000])
    _dead_letter(
        environment_id=d.environment_id,
        delivery_id=d.id,
        attempts=d.attempts,
        error=error,
        now=now,
        subscription_id=d.subscription_id,
        url=d.url,
        event_id=d.public_event_id,
        event_type=d.event_type,
        outbox_event_id=d.event_id,
    )


def _record(results: list[AttemptResult], now: datetime) -> tuple[DeliveryOutcome, dict[int, tuple[datetime, str]]]:
    """Write the results of a batch in one transaction: the log, each delivery's new state,
    dead letters, and the subscriptions' failure clock. Returns the subscriptions that
    may have to be paused: {id: (failing_since, last error)}."""
    outcome = DeliveryOutcome()
    to_check: dict[int, tuple[datetime, str]] = {}
    with transaction.atomic():
        asynchronous_commit()
        log: list[DeliveryAttempt] = []
        recovered: set[int] = set()
        failing: dict[int, Claimed] = {}
        moved_ok = _record_successes([r for r in results if r.ok], now)
        for result in results:
            c = result.claimed

            # Only the worker holding this attempt may move the delivery on: a lease that ran
            # out, a replay, a discard or a deletion in between makes this update a no-op.
            def current(c: Claimed = c) -> Any:
                return WebhookDelivery.objects.filter(pk=c.delivery_id, state=DeliveryState.PENDING, attempts=c.attempt)

            common = {"last_status_code": result.status_code, "last_latency_ms": result.latency_ms}
            if result.ok:
                moved = c.delivery_id in moved_ok
                outcome.succeeded += 1
                if c.failing_since is not None:
                    recovered.add(c.subscription_id)
            elif c.attempt >= MAX_ATTEMPTS:
                moved = current().update(state=DeliveryState.DEAD, last_error=result.error[:2000], **common)
                if moved:
                    _dead_letter(
                        environment_id=c.environment_id,
                        delivery_id=c.delivery_id,
                        attempts=c.attempt,
                        error=result.error,
                        now=now,
                        subscription_id=c.subscription_id,
                        url=c.url,
                        event_id=c.event_public_id,
                        event_type=c.event_type,
                        last_status_code=result.status_code,
                    )
                    outcome.dead_lettered += 1
                outcome.failed += 1
                failing[c.subscription_id] = c
            else:
                wait = retry_delay(c.attempt, result.retry_after)
                moved = current().update(next_attempt_at=now + wait, last_error=result.error[:2000], **common)
                outcome.failed += 1
                failing[c.subscription_id] = c
            if moved or WebhookDelivery.objects.filter(pk=c.delivery_id).exists():
                log.append(
                    DeliveryAttempt(
                        delivery_id=c.delivery_id,
                        attempt=c.attempt,
                        status_code=result.status_code,
                        latency_ms=result.latency_ms,
                        error=result.error[:2000],
                        attempted_at=now,
                    )
                )
        DeliveryAttempt.objects.bulk_create(log)
        if recovered:
            WebhookSubscription.objects.filter(pk__in=recovered - set(failing)).update(failing_since=None)
        for sub_id, c in failing.items():
            if c.failing_since is None:
                WebhookSubscription.objects.filter(pk=sub_id, failing_since__isnull=True).update(failing_since=now)
            elif now - c.failing_since >= webhooks.PAUSE_AFTER:
                last = next(r.error for r in reversed(results) if r.claimed.subscription_id == sub_id and not r.ok)
                to_check[sub_id] = (c.failing_since, last)
    return outcome, to_check


def _record_successes(results: list[AttemptResult], now: datetime) -> set[int]:
    """Mark delivered, in a few statements for the whole batch (the common case): per
    (attempt, status code) one locking read and one UPDATE, then the latencies. Returns
    the deliveries moved."""
    groups: dict[tuple[int, int | None], list[AttemptResult]] = defaultdict(list)
    for result in results:
        groups[(result.claimed.attempt, result.status_code)].append(result)
    moved: set[int] = set()
    for (attempt, status_code), group in groups.items():
        ids = [r.claimed.delivery_id for r in group]
        # Lock, then update: the rows this worker still holds (see `_record`) and no others.
        held = list(
            WebhookDelivery.objects.select_for_update()
            .filter(pk__in=ids, state=DeliveryState.PENDING, attempts=attempt)
            .values_list("pk", flat=True)
        )
        moved |= set(held)
        guarded = WebhookDelivery.objects.filter(pk__in=held)
        guarded.update(state=DeliveryState.SUCCEEDED, delivered_at=now, last_error="", last_status_code=status_code)
    rows = [
        WebhookDelivery(pk=r.claimed.delivery_id, last_latency_ms=r.latency_ms)
        for r in results
        if r.claimed.delivery_id in moved
    ]
    WebhookDelivery.objects.bulk_update(rows, ["last_latency_ms"], batch_size=500)
    return moved


def deliver_batch(
    *,
    now: datetime | None = None,
    batch_size: int = DELIVERY_BATCH,
    clients: sending.Clients | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> DeliveryOutcome:
    """Claim, send and record one batch of due deliveries."""
    clock_fixed = now is not None
    now = now or timezone.now()
    claimed, exhausted = _claim_deliveries(now, batch_size)
    if not claimed:
        return DeliveryOutcome(dead_lettered=exhausted, batches=1 if exhausted else 0)
    secrets: dict[int, str | Exception] = {}
    for c in claimed:
        if c.subscription_id not in secrets:
            try:
                secrets[c.subscription_id] = signing.decrypt_secret(c.secret_encrypted)
            except SecretUnreadable as exc:
                secrets[c.subscription_id] = exc
    own_clients = clients is None
    http = clients or sending.Clients()
    try:

        def send(c: Claimed) -> AttemptResult:
            # Signed at the moment of sending (a batch's last request may leave a while
            # after its claim), unless a test fixed the clock.
            return sending.send(c, secrets[c.subscription_id], http.of(c), now if clock_fixed else timezone.now())

        if len(claimed) == 1 or sending.concurrency() <= 1:
            results = [send(c) for c in claimed]
        elif pool is not None:
            results = list(pool.map(send, claimed))
        else:
            with ThreadPoolExecutor(max_workers=sending.concurrency(), thread_name_prefix="webhook") as own_pool:
                results = list(own_pool.map(send, claimed))
    finally:
        if own_clients:
            http.close()
    outcome, to_check = _record(results, now)
    outcome.claimed = len(claimed)
    outcome.dead_lettered += exhausted
    outcome.batches = 1
    for sub_id, (since, error) in to_check.items():
        if webhooks.webhook_pause_failing(subscription_id=sub_id, failing_since=since, last_error=error, now=now):
            outcome.paused.append(sub_id)
    return outcome


def deliver_webhooks(
    *,
    now: datetime | None = None,
    batch_size: int = DELIVERY_BATCH,
    max_batches: int | None = None,
    time_budget: float | None = None,
) -> DeliveryOutcome:
    """Send due deliveries batch after batch until none is due (or the budget is spent).

    `now` fixes the clock for tests (what is due, the signature's timestamp, the log).
    """
    total = DeliveryOutcome()
    started = time.monotonic()
    with (
        sending.Clients() as clients,
        ThreadPoolExecutor(max_workers=max(sending.concurrency(), 1), thread_name_prefix="webhook") as pool,
    ):
        while True:
            outcome = deliver_batch(now=now, batch_size=batch_size, clients=clients, pool=pool)
            total.add(outcome)
            if not outcome.batches:
                break
            if max_batches is not None and total.batches >= max_batches:
                break
            if time_budget is not None and time.monotonic() - started > time_budget:
                break
    return total
