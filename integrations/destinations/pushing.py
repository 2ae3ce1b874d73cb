"""One push, run once: claim it, call the destination's adapter through its circuit
breaker, then record the outcome — succeeded, deferred (retried later) or failed (a dead
letter) — on the push, on the destination and on the job it belongs to.

    pending ──run──> succeeded
       │  └──4xx, bad config──> failed ──> dead letter (replayable)
       └──5xx, timeout, breaker open, 429──> deferred (next_attempt_at) ──run──> …

A push is claimed with a conditional UPDATE that moves `next_attempt_at` a lease ahead,
so concurrent sweepers never run it twice and a killed worker's push comes back when
the lease runs out. Its progress (items delivered per phase) is kept on its payload, so
a retried push resumes after the last delivered batch. Nothing is dropped: a push that
keeps failing for about a day (MAX_ATTEMPTS) lands in the dead-letter list, from which
it is replayed. Network calls happen outside any transaction.

Which pushes run when is destinations/runner.py's: a job's pushes once, the retry sweep.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations import adapters
from integrations.adapters.base import (
    AdapterError,
    Checkpoint,
    CircuitOpen,
    ConfigurationError,
    RateLimited,
    ServerFailure,
)
from integrations.destinations import credentials as credentials_store
from integrations.destinations import selectors, services
from integrations.destinations.breakers import OPEN, Breaker, Snapshot
from integrations.destinations.selectors import clock_text, remaining_text
from integrations.destinations.validation import target_guard
from integrations.jobs import services as jobs
from integrations.models import DeadLetter, DestinationPush, Job, PushState
from integrations.webhooks.dead_letters import DESTINATION_PUSH

logger = logging.getLogger("marketerapi.destinations")

# How long a claimed push is held by its worker before another may take it over: longer
# than a large push takes (a 32,000-item async upsert polled for minutes).
LEASE = timedelta(minutes=15)
# A push that keeps failing is retried with exponential backoff, capped, then dead-lettered:
# 30 s, 1, 2, 4 … 60 min; 30 attempts span about a day.
RETRY_BASE = 30.0
RETRY_MAX_GAP = 3600.0
MAX_ATTEMPTS = 30
# Member pushes save their progress at most this often (their payload is large); sends
# save after every batch, because a re-sent batch is a message sent twice.
PROGRESS_EVERY = 2.0


@dataclass
class PushOutcome:
    push_id: int
    state: str
    delivered: int = 0
    warnings: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    hint: str = ""
    code: str = ""
    retry_at: datetime | None = None
    dead_letter_id: int | None = None
    snapshot: Snapshot | None = None


def _retry_gap(attempts: int) -> float:
    return min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_MAX_GAP)


def _claim(push: DestinationPush, now: datetime) -> bool:
    return bool(
        DestinationPush.objects.filter(
            pk=push.pk,
            state__in=[PushState.PENDING, PushState.DEFERRED],
            attempts=push.attempts,
            next_attempt_at__lte=now,
        ).update(attempts=push.attempts + 1, next_attempt_at=now + LEASE)
    )


def push_run(push_id: int, *, now: datetime | None = None) -> PushOutcome | None:
    """Run one due push now. Returns None when it is not due, not runnable or taken by
    another worker. Network calls happen outside any transaction."""
    fixed = now
    now = now or timezone.now()
    push = (
        DestinationPush.objects.select_related("destination", "destination__environment", "job")
        .filter(pk=push_id, state__in=[PushState.PENDING, PushState.DEFERRED], next_attempt_at__lte=now)
        .first()
    )
    if push is None or not push.destination.is_active:
        return None
    destination = push.destination
    # Services and tests that name `now` run the breaker on the same clock.
    breaker = selectors.breaker_of(destination, (lambda: fixed.timestamp()) if fixed is not None else None)
    snap = breaker.snapshot()
    if snap.state == OPEN:
        # Held back without spending an attempt: the breaker decides when to try again.
        return _defer(push, CircuitOpen("open", snapshot=snap), breaker, now, count_attempt=False)
    if not _claim(push, now):
        return None
    push.attempts += 1
    credentials: dict[str, Any] = {}
    progress: dict[str, int] = dict((push.payload or {}).get("progress") or {})
    last_saved = [time.monotonic()]

    def save_progress(done: dict[str, int]) -> None:
        progress.clear()
        progress.update(done)
        if push.kind == "send" or time.monotonic() - last_saved[0] >= PROGRESS_EVERY:
            push.payload = {**push.payload, "progress": dict(progress)}
            DestinationPush.objects.filter(pk=push.pk).update(payload=push.payload)
            last_saved[0] = time.monotonic()

    try:
        # Where it points first: a refused target is refused whatever the credentials.
        target_guard(destination)
        cls = adapters.get(destination.adapter)
        credentials = credentials_store.destination_credentials(destination, cls.primary_credential if cls else None)
        adapter = adapters.build(destination, credentials=credentials, breaker=breaker, reference=f"push-{push.pk}")
        checkpoint = Checkpoint(progress, on_advance=save_progress)
        with adapter:
            if push.kind == "send":
                result = adapter.send(push.payload.get("batch") or {}, checkpoint)
            else:
                result = adapter.push_members(
                    push.payload.get("added") or [], push.payload.get("removed") or [], checkpoint
                )
    except credentials_store.CredentialsUnavailable as exc:
        push.payload = {**push.payload, "progress": dict(progress)}
        return _fail(push, ConfigurationError(str(exc), hint=exc.hint), now, credentials)
    except (CircuitOpen, ServerFailure, RateLimited) as exc:
        push.payload = {**push.payload, "progress": dict(progress)}
        if push.attempts >= MAX_ATTEMPTS:
            return _fail(push, exc, now, credentials)
        return _defer(push, exc, breaker, now, count_attempt=True, credentials=credentials)
    except AdapterError as exc:
        push.payload = {**push.payload, "progress": dict(progress)}
        return _fail(push, exc, now, credentials)
    except Exception as exc:
        # A bug or an answer no adapter expected: keep the work and try again later, like
        # an outage (it still ends in the dead-letter list if it never goes through).
        logger.exception("push %s to destination %s failed unexpectedly", push.pk, destination.pk)
        push.payload = {**push.payload, "progress": dict(progress)}
        unexpected = ServerFailure(
            f"Pushing to {destination.name} failed unexpectedly ({type(exc).__name__}).",
            hint="The error is in the worker's log; the work is kept and retried.",
        )
        if push.attempts >= MAX_ATTEMPTS:
            return _fail(push, unexpected, now, credentials)
        return _defer(push, unexpected, breaker, now, count_attempt=True, credentials=credentials)
    return _succeed(push, result, now, progress)


def _defer(
    push: DestinationPush,
    exc: AdapterError,
    breaker: Breaker,
    now: datetime,
    *,
    count_attempt: bool,
    credentials: dict[str, Any] | None = None,
) -> PushOutcome:
    snap = breaker.snapshot()
    if isinstance(exc, RateLimited):
        retry_at = now + timedelta(seconds=exc.retry_after)
    else:
        retry_at = now + timedelta(seconds=_retry_gap(push.attempts)) if count_attempt else now
        if snap.state != "closed" and snap.retry_at is not None:
            retry_at = max(retry_at, snap.retry_at)
    name = push.destination.name
    if isinstance(exc, RateLimited):
        cause = f"{name} is rate limiting us ({credentials_store.redact(exc.message, credentials)})"
    elif snap.failures:
        cause = f"{name} is unavailable ({snap.failures} failures, last: {snap.last_error or 'unknown'})"
    else:
        cause = credentials_store.redact(exc.message, credentials).rstrip(".")
    message = (
        f"{cause}. {remaining_text(push)} are queued and will be retried from {clock_text(retry_at)}; nothing was lost."
    )
    values: dict[str, Any] = {"state": PushState.DEFERRED, "next_attempt_at": retry_at, "last_error": message[:1000]}
    if count_attempt:
        values["payload"] = push.payload
        DestinationPush.objects.filter(pk=push.pk).update(**values)
    else:
        # Not claimed: only a push that is still due and waiting is moved.
        DestinationPush.objects.filter(
            pk=push.pk, state__in=[PushState.PENDING, PushState.DEFERRED], attempts=push.attempts
        ).update(**values)
    if count_attempt:
        services.destination_record_call(push.destination_id, ok=False, at=now, error=cause)
    outcome = PushOutcome(
        push.pk,
        PushState.DEFERRED,
        error=message,
        code=exc.code,
        hint=(
            "Nothing to do: delivery resumes by itself. GET /api/v1/destinations/"
            f"{push.destination_id}/health shows the circuit breaker; once the vendor is back, POST "
            f"/api/v1/destinations/{push.destination_id}/test retries at once."
        ),
        retry_at=retry_at,
        snapshot=snap,
    )
    _after_push(push, outcome, now)
    return outcome


def _fail(push: DestinationPush, exc: AdapterError, now: datetime, credentials: dict[str, Any]) -> PushOutcome:
    detail = credentials_store.redact(exc.message, credentials)
    with transaction.atomic():
        DestinationPush.objects.filter(pk=push.pk).update(
            state=PushState.FAILED, done_at=now, last_error=detail[:1000], payload=push.payload
        )
        letter = DeadLetter.objects.create(
            environment_id=push.destination.environment_id,
            kind=DESTINATION_PUSH,
            reference_id=str(push.pk),
            payload={
                "push_id": push.pk,
                "destination_id": push.destination_id,
                "destination": push.destination.name,
                "kind": push.kind,
                "job_id": push.job_id,
                "progress": (push.payload or {}).get("progress") or {},
            },
            attempts=push.attempts,
            last_error=detail[:1000],
        )
        services.destination_record_call(push.destination_id, ok=False, at=now, error=detail)
    hint = exc.hint or "Fix the destination, then replay the dead letter."
    outcome = PushOutcome(
        push.pk,
        PushState.FAILED,
        error=f"{detail} {remaining_text(push)} were not delivered.",
        code=exc.code,
        hint=f"{hint} Then replay it: POST /api/v1/dead-letters/{letter.pk}/replay.",
        dead_letter_id=letter.pk,
    )
    _after_push(push, outcome, now)
    return outcome


def _succeed(
    push: DestinationPush, result: adapters.DeliveryResult, now: datetime, progress: dict[str, int]
) -> PushOutcome:
    summary = {k: v for k, v in result.as_dict().items() if k != "warnings"}
    payload = {**push.payload, "progress": dict(progress), "result": summary}
    with transaction.atomic():
        DestinationPush.objects.filter(pk=push.pk).update(
            state=PushState.SUCCEEDED, done_at=now, last_error="", payload=payload
        )
        services.destination_record_call(push.destination_id, ok=True, at=now)
        # The vendor is back: whatever else waits for it goes now instead of at its backoff.
        waiting = services.pushes_bring_forward(push.destination, now)
        if waiting:
            transaction.on_commit(services.kick_due_pushes, robust=True)
    push.payload = payload
    outcome = PushOutcome(push.pk, PushState.SUCCEEDED, delivered=result.delivered, warnings=result.warnings)
    _after_push(push, outcome, now)
    return outcome


def destination_ref(push: DestinationPush) -> dict[str, Any]:
    d = push.destination
    return {"id": d.pk, "name": d.name, "adapter": d.adapter}


def _after_push(push: DestinationPush, outcome: PushOutcome, now: datetime) -> None:
    """A push of a job that already finished: update what the job says about it."""
    job = push.job
    if job is None or job.state not in jobs.TERMINAL:
        return
    key = str(push.destination_id)

    def change(locked: Job) -> None:
        entry = dict((locked.result.get("destinations") or {}).get(key) or {})
        entry.update(state=outcome.state, updated_at=now.isoformat())
        if outcome.retry_at:
            entry["retry_at"] = outcome.retry_at.isoformat()
        locked.result = {**locked.result, "destinations": {**(locked.result.get("destinations") or {}), key: entry}}
        for warning in locked.warnings:
            if warning.get("push_id") == push.pk and not warning.get("resolved_at"):
                if outcome.state == PushState.SUCCEEDED:
                    warning["resolved_at"] = now.isoformat()
                    warning["resolution"] = f"Delivered at {clock_text(now)} after {push.attempts} attempt(s)."
                elif outcome.state == PushState.DEFERRED:
                    warning["retry_at"] = outcome.retry_at.isoformat() if outcome.retry_at else None
                    warning["message"] = outcome.error
                elif outcome.state == PushState.FAILED:
                    warning["resolved_at"] = now.isoformat()
                    warning["resolution"] = "Failed for good; see errors."
        if outcome.state == PushState.FAILED:
            locked.errors = [
                *locked.errors,
                jobs.note(
                    outcome.code,
                    outcome.error,
                    outcome.hint,
                    destination=destination_ref(push),
                    push_id=push.pk,
                    dead_letter_id=outcome.dead_letter_id,
                ),
            ]

    jobs.job_amend(job.pk, change)
