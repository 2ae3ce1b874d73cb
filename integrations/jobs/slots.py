"""Job slots: heavy work waits its turn instead of being refused.

Publishes, campaign sends and exports share one limit per environment (`JOB_SLOTS`: how
many of them may run at once, e.g. 2 in sandbox and 4 elsewhere), enforced across every
worker in the database: a claim counts the environment's running heavy jobs under a row
lock on the environment. A job past the limit stays `queued`, shows its `queue_position`
(GET /jobs/{id}), and starts by itself when a slot frees: a heavy job reaching a final
state dispatches the next ones on commit, and beat's sweep (`integrations.job_slots_dispatch`)
catches a kick that was lost. A job whose heartbeat is older than `JOB_SLOT_STALE_SECONDS`
(its worker was killed) no longer holds a slot.

Each app registers its heavy kinds in `AppConfig.ready()`:

    slots.register_heavy("audience.publish", "audiences.publish")

with the name of the Celery task that runs a queued job of that kind, called as
`task.delay(job_id)`; the task's first step is `jobs.job_claim(job_id)`, which answers None
while the slots are full (the task then simply returns).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from governance.models import Environment
from integrations.models import Job, JobState

logger = logging.getLogger(__name__)

# kind → the Celery task name that runs a queued job of that kind.
HEAVY: dict[str, str] = {}


def register_heavy(kind: str, task: str) -> None:
    HEAVY[kind] = task


def is_heavy(kind: str) -> bool:
    return kind in HEAVY


def limit_for(environment: Environment) -> int:
    """How many heavy jobs may run at once in the environment."""
    limits: dict[str, int] = settings.JOB_SLOTS
    return max(1, int(limits.get(environment.slug, limits.get("*", 4))))


def _fresh_after(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.JOB_SLOT_STALE_SECONDS)


def _holding(environment_id: int, now: datetime) -> int:
    """Running heavy jobs whose worker is alive (heartbeat fresh)."""
    return Job.objects.filter(
        environment_id=environment_id, kind__in=list(HEAVY), state=JobState.RUNNING, heartbeat_at__gte=_fresh_after(now)
    ).count()


def claim(job_id: int, *, now: datetime) -> Job | None:
    """queued → running for a heavy job, when a slot is free and no older job of the
    environment is waiting for one; None otherwise (the job stays queued)."""
    with transaction.atomic():
        row = Job.objects.filter(pk=job_id, state=JobState.QUEUED).values("environment_id").first()
        if row is None:
            return None
        environment = Environment.objects.select_for_update().get(pk=row["environment_id"])
        free = limit_for(environment) - _holding(environment.pk, now)
        ahead = Job.objects.filter(
            environment_id=environment.pk, kind__in=list(HEAVY), state=JobState.QUEUED, id__lt=job_id
        ).count()
        if ahead >= free:
            if free > 0:
                # Older jobs fit in the free slots: their kick may have been lost.
                transaction.on_commit(lambda: dispatch_queued(environment_id=environment.pk), robust=True)
            return None
        claimed = Job.objects.filter(pk=job_id, state=JobState.QUEUED).update(
            state=JobState.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
        )
        if claimed != 1:
            return None
    return Job.objects.select_related("environment").get(pk=job_id)


def position(job: Job) -> int:
    """1 for the next heavy job of the environment to get a slot, 2 for the one after…"""
    return (
        Job.objects.filter(
            environment_id=job.environment_id, kind__in=list(HEAVY), state=JobState.QUEUED, id__lt=job.pk
        ).count()
        + 1
    )


def released(job: Job) -> None:
    """A heavy job reached a final state: start the next ones once this transaction commits."""
    if is_heavy(job.kind):
        environment_id = job.environment_id
        transaction.on_commit(lambda: dispatch_queued(environment_id=environment_id), robust=True)


def dispatch_queued(*, environment_id: int | None = None, now: datetime | None = None) -> list[int]:
    """Enqueue the oldest queued heavy jobs that fit in their environment's free slots (the
    task's claim decides); every environment with waiting jobs when none is given."""
    if not HEAVY:
        return []
    now = now or timezone.now()
    waiting = Job.objects.filter(kind__in=list(HEAVY), state=JobState.QUEUED)
    if environment_id is not None:
        waiting = waiting.filter(environment_id=environment_id)
    environments = Environment.objects.filter(pk__in=waiting.values("environment_id")).annotate(
        busy=Count(
            "jobs",
            filter=Q(
                jobs__kind__in=list(HEAVY), jobs__state=JobState.RUNNING, jobs__heartbeat_at__gte=_fresh_after(now)
            ),
        )
    )
    started: list[tuple[int, str]] = []
    for environment in environments:
        free = limit_for(environment) - environment.busy  # type: ignore[attr-defined]
        if free <= 0:
            continue
        started += list(waiting.filter(environment_id=environment.pk).order_by("id").values_list("pk", "kind")[:free])
    from marketerapi.celery import app

    for job_id, kind in started:
        try:
            app.tasks[HEAVY[kind]].delay(job_id)
        except Exception:
            logger.warning("could not enqueue %s job %s", kind, job_id, exc_info=True)
    return [job_id for job_id, _ in started]
