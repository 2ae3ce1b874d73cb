"""The worker side of destinations: which pushes run when. Queue a members diff, run a
job's pushes once and say what happened, finish the delivery jobs, and retry what was
deferred (running one push is destinations/pushing.py).

The one way a members diff reaches the destinations — publishing and a delivery job of
its own alike:

1. `members_push(environment=…, job=…, added=…, removed=…)` queues the diff for every
   active destination of the environment as pushes of the caller's job, in the caller's
   transaction (so it commits, or not, with what caused it);
2. after the commit, `job_pushes_run(job)` runs each of the job's pushes once, in order,
   and returns what the job should say (`JobDelivery`): one warning per destination that
   was deferred (what failed, what happens next), an error per push that failed for good,
   and a summary per destination. The retry sweep (`pushes_run_due`) delivers what was
   deferred later and marks the job's warning resolved.

`members_delivery_start` and `destination_job_run` are that path for a job of its own
(`destination.push`): queue under a new job and run it after commit; claim it, run its
pushes, finish it (`partially_succeeded` with a warning per deferred destination, or
`failed` when nothing was delivered anywhere). `delivery_jobs_recover` finishes the
delivery jobs whose task or worker was lost.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance.models import Environment
from integrations.destinations import pushing, services
from integrations.destinations.selectors import remaining_text
from integrations.jobs import services as jobs
from integrations.models import DeadLetter, Destination, DestinationPush, Job, JobState, PushState
from integrations.webhooks.dead_letters import DESTINATION_PUSH

JOB_KIND = "destination.push"
# A members diff is queued in pushes of this many ids per destination: a push is retried
# and resumed as a whole, and its payload is one JSON value.
MEMBERS_BATCH = 10_000
DUE_BATCH = 100
# A delivery job still queued after this long lost its task (a broker hiccup): the sweep runs it.
LOST_JOB_AFTER = timedelta(minutes=2)


# --- the members diff: queue it, run it -------------------------------------------------------


def _batches(ids: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for value in ids:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def members_push(
    *,
    environment: Environment,
    job: Job,
    added: Iterable[Any],
    removed: Iterable[Any] = (),
    destinations: Sequence[Destination] | None = None,
    batch_size: int | None = MEMBERS_BATCH,
) -> int:
    """Queue a members diff for every active destination of `environment` (or those given),
    as pushes of `job`, in the caller's transaction. Returns how many pushes were created.

    `removed` goes first, then `added`, each in pushes of `batch_size` ids (external ids, or
    rows with an `external_id`), one push per batch and destination, in that order — the
    order `job_pushes_run` runs them in. `batch_size=None` queues the whole diff as one push
    per destination. Nothing is read from `added` and `removed` (they may be lazy
    iterators over a large table) when the environment has no active destination.
    """
    chosen = (
        list(destinations)
        if destinations is not None
        else list(Destination.objects.filter(environment=environment, is_active=True))
    )
    if any(destination.environment_id != environment.pk for destination in chosen):
        raise ValueError("a destination of another environment")
    if not chosen:
        return 0
    payloads: Iterable[dict[str, list[Any]]]
    if batch_size is None:
        payloads = [{"added": list(added), "removed": list(removed)}]
    else:
        # A generator: one batch of ids in memory at a time, however large the diff.
        payloads = itertools.chain(
            ({"added": [], "removed": batch} for batch in _batches(removed, batch_size)),
            ({"added": batch, "removed": []} for batch in _batches(added, batch_size)),
        )
    created = 0
    for payload in payloads:
        for destination in chosen:
            services.push_create(destination=destination, kind="members", payload=payload, job=job)
            created += 1
    return created


@dataclass
class JobDelivery:
    """What a job says after running its pushes once (`job_pushes_run`)."""

    # One `destination_deferred` warning per destination (however many of its pushes wait),
    # `rows_rejected` and the adapters' own warnings.
    warnings: list[dict[str, Any]] = field(default_factory=list)
    # One error per push that failed for good, with its dead letter.
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Per destination id: {"name", "pushes", "delivered", "state", "retry_at"?}; the state is
    # the worst of its pushes (failed, else deferred or pending, else succeeded).
    destinations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Something was delivered, or is deferred to be delivered, somewhere.
    delivered_any: bool = False


def job_pushes_run(
    job: Job, *, now: datetime | None = None, on_progress: Callable[[int, int], None] | None = None
) -> JobDelivery:
    """Run each of the job's pending or deferred pushes once, in id order, and say what
    happened. `on_progress(done, total)` is called after each push (the caller records the
    job's progress its own way). Deferred pushes become warnings that say what happens next;
    the retry sweep delivers them later and marks the warning resolved."""
    report = JobDelivery()
    pushes = list(job.pushes.select_related("destination", "destination__environment").order_by("id"))
    for index, push in enumerate(pushes, start=1):
        outcome = pushing.push_run(push.pk, now=now) if push.state in (PushState.PENDING, PushState.DEFERRED) else None
        more_warnings, more_errors = delivery_notes(push, outcome)
        report.warnings += more_warnings
        report.errors += more_errors
        # delivery_notes read the push again when it was not run here.
        state = outcome.state if outcome else push.state
        report.delivered_any = report.delivered_any or state in (PushState.SUCCEEDED, PushState.DEFERRED)
        entry = report.destinations.setdefault(
            str(push.destination_id),
            {"name": push.destination.name, "pushes": 0, "delivered": 0, "state": PushState.SUCCEEDED},
        )
        entry["pushes"] += 1
        entry["delivered"] += outcome.delivered if outcome else 0
        if state != PushState.SUCCEEDED and entry["state"] != PushState.FAILED:
            entry["state"] = state
        if outcome is not None and outcome.retry_at is not None and "retry_at" not in entry:
            entry["retry_at"] = outcome.retry_at.isoformat()
        if on_progress is not None:
            on_progress(index, len(pushes))
    report.warnings = _one_deferral_per_destination(report.warnings)
    return report


def _one_deferral_per_destination(notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One deferral warning per destination, however many pushes it holds back."""
    seen: set[Any] = set()
    out = []
    for note in notes:
        if note.get("code") == "destination_deferred" and note.get("destination"):
            key = note["destination"].get("id")
            if key in seen:
                continue
            seen.add(key)
        out.append(note)
    return out


def members_delivery_start(
    *,
    environment: Environment,
    added: Sequence[Any],
    removed: Sequence[Any],
    destinations: Iterable[Destination] | None = None,
    job: Job | None = None,
    requested_by: Any = None,
    target: Any = None,
    enqueue: bool = True,
) -> Job:
    """A delivery of a members diff as a job of its own (`destination.push`): queue the diff,
    whole, as one push per active destination of the environment (or those given), under
    a new job unless one is passed; the job runs after commit (`destination_job_run`).

    For deliveries that are not part of another job (a diff sent again by hand, tools and
    tests). Publishing does not use this: it queues under its own publish job with
    `members_push` and runs the pushes with `job_pushes_run`.
    """
    with transaction.atomic():
        if job is None:
            job = jobs.job_create(
                environment=environment,
                kind=JOB_KIND,
                target=target,
                requested_by=requested_by,
                params={"added": len(added), "removed": len(removed)},
            )
        members_push(
            environment=environment,
            job=job,
            added=added,
            removed=removed,
            destinations=list(destinations) if destinations is not None else None,
            batch_size=None,
        )
        if enqueue:
            job_id = job.pk
            transaction.on_commit(lambda: services.enqueue_job(job_id), robust=True)
    return job


def destination_job_run(job_id: int, *, now: datetime | None = None) -> Job | None:
    """Claim a delivery job (`destination.push`), run each of its pushes once, and finish it:

    - every push delivered → succeeded (rows a vendor refused are warnings);
    - some deferred (a destination down or rate limiting) → partially_succeeded, one warning
      per destination with what failed and when it is retried;
    - some failed for good → partially_succeeded with errors, or failed when nothing was
      delivered anywhere.
    """
    job = jobs.job_claim(job_id, now=now)
    if job is None:
        return None
    total = job.pushes.count()
    jobs.job_progress(job, done=0, total=total, now=now)
    report = job_pushes_run(
        job, now=now, on_progress=lambda done, total: jobs.job_progress(job, done=done, total=total, now=now)
    )
    final = JobState.FAILED if report.errors and not report.delivered_any else None
    return jobs.job_finish(
        job,
        warnings=report.warnings,
        errors=report.errors,
        result={"destinations": report.destinations},
        state=final,
        now=now,
    )


# --- sweeps ---------------------------------------------------------------------------------


def delivery_jobs_recover(*, now: datetime | None = None) -> int:
    """Finish delivery jobs nobody will finish: queued ones whose task was lost (run them
    now) and running ones whose worker died (their pushes go on through the sweep; the job
    reports where each stands). Returns how many jobs it finished."""
    given = now
    now = now or timezone.now()
    finished = 0
    lost = Job.objects.filter(kind=JOB_KIND, state=JobState.QUEUED, created_at__lt=now - LOST_JOB_AFTER)
    for job_id in lost.values_list("pk", flat=True)[:DUE_BATCH]:
        finished += destination_job_run(job_id, now=given) is not None
    stale = Job.objects.filter(kind=JOB_KIND, state=JobState.RUNNING, heartbeat_at__lt=now - pushing.LEASE)
    for job in stale[:DUE_BATCH]:
        pushes = list(job.pushes.select_related("destination").order_by("id"))
        warnings: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for push in pushes:
            more_warnings, more_errors = delivery_notes(push, None)
            warnings += more_warnings
            errors += more_errors
        delivered_any = any(p.state != PushState.FAILED for p in pushes)
        state = JobState.FAILED if errors and not delivered_any else None
        jobs.job_finish(job, warnings=warnings, errors=errors, state=state, now=now)
        finished += 1
    return finished


def pushes_run_due(*, now: datetime | None = None, limit: int = DUE_BATCH, time_budget: float = 50.0) -> dict[str, int]:
    """Run pushes whose time has come (the periodic retry of deferred work), after
    finishing delivery jobs that were lost."""
    started = time.monotonic()
    given = now
    now = now or timezone.now()
    delivery_jobs_recover(now=given)
    counts = {"run": 0, "succeeded": 0, "deferred": 0, "failed": 0}
    due = list(
        DestinationPush.objects.filter(
            state__in=[PushState.PENDING, PushState.DEFERRED],
            next_attempt_at__lte=now,
            destination__is_active=True,
        )
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    for push_id in due:
        if time.monotonic() - started > time_budget:
            break
        outcome = pushing.push_run(push_id, now=given)
        if outcome is None:
            continue
        counts["run"] += 1
        counts[outcome.state] = counts.get(outcome.state, 0) + 1
    return counts


# --- what a job says about each push ----------------------------------------------------------


def delivery_notes(push: DestinationPush, outcome: pushing.PushOutcome | None) -> tuple[list[dict], list[dict]]:
    """The warnings and errors a job shows for one destination's push."""
    ref = pushing.destination_ref(push)
    if outcome is None:
        push.refresh_from_db()
        state = push.state
        if state == PushState.SUCCEEDED:
            return [], []
        if state == PushState.FAILED:
            letter = DeadLetter.objects.filter(kind=DESTINATION_PUSH, reference_id=str(push.pk)).order_by("-id").first()
            return [], [
                jobs.note(
                    "destination_failed",
                    f"{push.last_error} {remaining_text(push)} were not delivered.",
                    "Fix the destination, then replay its dead letter."
                    + (f" POST /api/v1/dead-letters/{letter.pk}/replay." if letter else ""),
                    destination=ref,
                    push_id=push.pk,
                    dead_letter_id=letter.pk if letter else None,
                )
            ]
        message = push.last_error or f"{remaining_text(push)} are queued for {push.destination.name}."
        warning = jobs.note(
            "destination_deferred",
            message,
            "Nothing to do: delivery resumes by itself.",
            destination=ref,
            push_id=push.pk,
            retry_at=push.next_attempt_at.isoformat(),
            resolved_at=None,
        )
        return [warning], []
    if outcome.state == PushState.DEFERRED:
        warning = jobs.note(
            "destination_deferred",
            outcome.error,
            outcome.hint,
            destination=ref,
            push_id=push.pk,
            retry_at=outcome.retry_at.isoformat() if outcome.retry_at else None,
            resolved_at=None,
        )
        return [warning], []
    if outcome.state == PushState.FAILED:
        return [], [
            jobs.note(
                outcome.code,
                outcome.error,
                outcome.hint,
                destination=ref,
                push_id=push.pk,
                dead_letter_id=outcome.dead_letter_id,
            )
        ]
    rejected = [w for w in outcome.warnings if w.get("code") == "row_rejected"]
    others = [w for w in outcome.warnings if w.get("code") != "row_rejected"]
    warnings = []
    if rejected:
        first = rejected[0]["message"]
        warnings.append(
            jobs.note(
                "rows_rejected",
                f"{push.destination.name} did not take {len(rejected):,} row(s); the others were delivered "
                f"(first: {first})",
                "Fix those rows' values (e.g. an invalid email) and publish again; they are listed in `rows`.",
                destination=ref,
                push_id=push.pk,
                rows=rejected[:20],
            )
        )
    for other in others:
        warnings.append(
            jobs.note(other["code"], other["message"], other.get("hint", ""), destination=ref, push_id=push.pk)
        )
    return warnings, []
