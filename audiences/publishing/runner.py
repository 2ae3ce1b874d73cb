"""The worker side of publishing: claim a publish or rollback job, run its steps, fail it
with a reason, recover jobs whose worker died.

    publish_job_run(job_id)  (the Celery task `audiences.publish`; also resumes a killed worker's job)
      1. materialize   build.py: the version's members (one INSERT … SELECT), counts, diff sizes
      2. swap          swap.py: the version goes live, its diff is queued as pushes
      3. deliver       integrations' one push runner (destinations/runner.py job_pushes_run)
                       runs each push once; deferred ones become warnings that the
                       integrations retry sweep resolves later
      4. retention     member rows of versions beyond the newest N are deleted set-based

Everything before the swap leaves the previous version live: a failure marks the version
`failed` with its error and the job `failed` with a hint. A killed worker leaves the job
`running`; its lock (PostgreSQL) is released with its connection — `publish_jobs_recover`
(Celery beat every 30 s, `audiences.publish_recover`, and every worker as it starts)
enqueues it again, and the next run takes it over (saying so in `result.restarts`) and
starts the step it was in over. Job rows change only through integrations.jobs.services.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from audiences.models import Audience, AudienceVersion, Membership, VersionState
from audiences.publishing.build import materialize
from audiences.publishing.errors import BuildFailed, Superseded
from audiences.publishing.swap import swap_live
from governance.actors import Actor
from governance.models import Door
from integrations.destinations import runner as destination_runner
from integrations.jobs import services as jobs
from integrations.models import Job, JobState

logger = logging.getLogger("marketerapi.publish")

# The kinds of job this runner runs: also the names of the actions that start them.
PUBLISH = "audience.publish"
ROLLBACK = "audience.rollback"
JOB_KINDS = (PUBLISH, ROLLBACK)
# Steps a publish job reports in `progress` (materialize, go live, deliver).
STEPS_TOTAL = 3
# Where there are no advisory locks (SQLite: development, tests), a running job whose
# heartbeat is older than this lost its worker: it may be taken over (PUBLISH_STALE_SECONDS).
STALE_AFTER = timedelta(seconds=settings.PUBLISH_STALE_SECONDS)
# PostgreSQL: the job's advisory lock tells a live worker from a dead one. A job claimed
# less than this ago may not hold its lock yet (claim, then lock): it counts as alive.
CLAIM_GRACE = timedelta(seconds=5)
# A queued job older than this lost its kick (broker down, process killed after commit).
LOST_AFTER = timedelta(minutes=2)
# A job taken over this many times is given up: the worker keeps dying on it.
MAX_ATTEMPTS = 3

# Two-key advisory locks: this class ("MKPU") and the job id. The audit chain and the relay
# use classes of their own.
_LOCK_CLASS = 0x4D4B5055


def _try_lock(job_id: int) -> bool:
    """Take the job's session-level advisory lock (PostgreSQL). The worker holds it while it
    runs the job; a killed worker's connection closes and releases it, which is how a stale
    heartbeat is told apart from a long statement of a worker that is still alive."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, job_id])
        return bool(cursor.fetchone()[0])


def _unlock(job_id: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, job_id])


def worker_alive(job: Job, now: datetime) -> bool:
    """Is a worker still on this running job? PostgreSQL: some session holds the job's
    lock — the worker holds it for the whole run, however long one INSERT … SELECT takes,
    and a killed worker's connection closes and releases it at once — or the job was
    claimed a moment ago (CLAIM_GRACE). Elsewhere: its heartbeat is within STALE_AFTER."""
    if job.heartbeat_at is None:
        return True
    if connection.vendor != "postgresql":
        return job.heartbeat_at > now - STALE_AFTER
    if job.heartbeat_at > now - CLAIM_GRACE:
        return True
    if _try_lock(job.pk):
        _unlock(job.pk)
        return False
    return True


def stale_before(now: datetime) -> datetime:
    """Heartbeats older than this may belong to a dead worker (then `worker_alive` decides)."""
    return now - (CLAIM_GRACE if connection.vendor == "postgresql" else STALE_AFTER)


def _claim(job_id: int, now: datetime) -> Job | None:
    """queued → running; or take over a running job whose worker is gone, saying so in the
    job's `result.restarts`."""
    job = jobs.job_claim(job_id, now=now)
    if job is not None:
        return job
    running = Job.objects.filter(pk=job_id, kind__in=JOB_KINDS, state=JobState.RUNNING).first()
    if running is None or worker_alive(running, now):
        return None
    taken = jobs.job_take_over(running, stale_before=stale_before(now), now=now)
    if taken is None:
        return None
    phase = (running.progress or {}).get("phase", "building")
    note = jobs.note(
        "worker_restarted",
        f"The worker stopped while {phase} (attempt {running.attempts}); another worker took the job over and "
        "restarted the step it was in. Nothing was done twice.",
        "Nothing to do; if it happens often, ask a platform engineer to look at the workers.",
        attempt=taken.attempts,
    )
    # In the result, not the warnings: a job that then finishes did all its work (succeeded).
    return jobs.job_amend(
        taken.pk, lambda row: setattr(row, "result", {**(row.result or {}), "restarts": [*_restarts(row), note]})
    )


def _restarts(job: Job) -> list[dict[str, Any]]:
    restarts = (job.result or {}).get("restarts")
    return list(restarts) if isinstance(restarts, list) else []


def _task_actor(version: AudienceVersion, job: Job) -> Actor:
    """The requester, through the task door (the system when the user is gone)."""
    environment = version.audience.environment
    if version.created_by is None:
        return Actor.system(environment, door=Door.TASK, request_id=f"job-{job.pk}")
    return Actor(user=version.created_by, environment=environment, door=Door.TASK, request_id=f"job-{job.pk}")


def publish_job_run(job_id: int, *, now: datetime | None = None) -> Job | None:
    """Build a version, make it live and deliver its diff; None when the job is not this
    worker's to run (another has it, or it is finished). `now` fixes the clock in tests."""
    job = _claim(job_id, now or timezone.now())
    if job is None:
        return None
    if not _try_lock(job.pk):
        return None  # a worker the heartbeat missed is still on it (a race with the takeover)
    try:
        return _run(job, now)
    finally:
        _unlock(job.pk)


def _run(job: Job, now: datetime | None) -> Job:
    version = (
        AudienceVersion.objects.select_related(
            "audience", "audience__environment", "audience__owner_team", "created_by", "rebuilt_from"
        )
        .filter(job_id=job.pk)
        .first()
    )
    if version is None:
        return jobs.job_fail(job, error=jobs.note("version_missing", "The version of this job was deleted.", ""))
    previous = version.audience.live_version_id
    if version.state == VersionState.FAILED:
        return jobs.job_fail(job, error=jobs.note("version_failed", version.error, "Publish again."))
    warnings: list[dict[str, Any]] = []
    if version.state == VersionState.BUILDING:
        if job.attempts > MAX_ATTEMPTS:
            return _fail(
                job,
                version,
                previous,
                BuildFailed(
                    "worker_lost",
                    f"the worker stopped {job.attempts - 1} times while building it.",
                    "Publish again; if it stops again, ask a platform engineer to look at the workers' memory and "
                    f"time limits, quoting job {job.pk}.",
                ),
            )
        try:
            jobs.job_progress(job, done=0, total=STEPS_TOTAL, phase="materializing", now=now)
            build = materialize(version)
            jobs.job_progress(job, done=1, phase="going live", members=build.members, now=now)
            swap_live(version, job, build, actor=_task_actor(version, job))
            warnings = build.warnings
        except Superseded:
            # A newer publish replaced this version while it was built (it took this job for
            # dead): drop what this run inserted. That publish ended this job `cancelled`,
            # "superseded by job N" (services._supersede); the state stays as it set it.
            Membership.objects.filter(version_id=version.pk).delete()
            job.refresh_from_db()
            if job.state in jobs.TERMINAL:
                return job
            return jobs.job_fail(
                job,
                error=jobs.note(
                    "superseded",
                    f"Version {version.number} was replaced by a newer publish before it went live.",
                    "Follow the newer publish's job instead.",
                ),
            )
        except BuildFailed as failure:
            return _fail(job, version, previous, failure)
        except Exception as exc:
            logger.exception("publishing version %s of audience %s failed", version.number, version.audience_id)
            return _fail(
                job,
                version,
                previous,
                BuildFailed(
                    "publish_failed",
                    failure_words(exc),
                    f"Nothing went live. Publish again; if it fails again, ask a platform engineer, quoting job "
                    f"{job.pk}.",
                ),
                operator_detail=f"{type(exc).__name__}: {exc}",
            )
    # From here the version is live (also when a worker died after the swap and this run
    # resumes): what is left is delivering the pushes the swap created, and retention.
    jobs.job_progress(job, done=2, phase="delivering", now=now)
    try:
        delivery = destination_runner.job_pushes_run(
            job,
            now=now,
            on_progress=lambda done, total: jobs.job_progress(
                job, done=2, phase="delivering", pushes_done=done, pushes_total=total, now=now
            ),
        )
        delivery_warnings, delivery_errors, destinations = delivery.warnings, delivery.errors, delivery.destinations
    except Exception as exc:
        logger.exception("delivering publish job %s failed", job.pk)
        delivery_warnings, destinations = [], {}
        delivery_errors = [
            jobs.note(
                "delivery_interrupted",
                f"Version {version.number} is live, but running its pushes stopped: {failure_words(exc)}",
                "Nothing to do: the pushes are kept and the retry sweep delivers them.",
                operator_detail=f"{type(exc).__name__}: {exc}"[:2000],
            )
        ]
    pruned = prune_memberships(version.audience_id)
    return jobs.job_finish(
        job,
        warnings=[*warnings, *delivery_warnings],
        errors=delivery_errors,
        result={"destinations": destinations, "pruned_versions": pruned},
    )


def failure_words(exc: BaseException) -> str:
    """What a marketer reads about an unexpected failure: words, never the raw exception
    (its text, with SQL and hostnames, is kept for operators: the log, and the job's error
    `operator_detail`, shown in the admin site only)."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return "the database was unavailable for a moment; retrying is safe."
    if isinstance(exc, DatabaseError):
        return "the database refused a change; retrying is safe, and a platform engineer can see why in the job."
    return "an unexpected error occurred; retrying is safe, and a platform engineer can see why in the job."


def _fail(
    job: Job, version: AudienceVersion, previous: int | None, failure: BuildFailed, *, operator_detail: str = ""
) -> Job:
    live = (
        AudienceVersion.objects.filter(pk=previous).values_list("number", flat=True).first()
        if previous is not None
        else None
    )
    stays = f"version {live} stays live" if live is not None else "the audience has no live version yet"
    message = f"Version {version.number} did not go live ({stays}): {failure.message}"
    fail_version(version, message)
    extra = {"operator_detail": operator_detail[:2000]} if operator_detail else {}
    return jobs.job_fail(job, error=jobs.note(failure.code, message, failure.hint, **extra))


def fail_version(version: AudienceVersion, error: str) -> None:
    """building → failed with the reason; its member rows, if any, are deleted (set-based)."""
    with transaction.atomic():
        failed = AudienceVersion.objects.filter(pk=version.pk, state=VersionState.BUILDING).update(
            state=VersionState.FAILED, error=error[:2000], members_retained=False
        )
        if failed:
            Membership.objects.filter(version_id=version.pk).delete()
    version.state = VersionState.FAILED
    version.error = error


# --- step 4: retention ---------------------------------------------------------------------


def prune_memberships(audience_id: int, *, keep: int | None = None) -> list[int]:
    """Delete the member rows of versions beyond the newest `keep` (AUDIENCE_VERSIONS_WITH_MEMBERS)
    that went live; the live version always keeps its members. Rules, counts and diff sizes stay.
    Returns the numbers of the versions pruned."""
    keep = keep or settings.AUDIENCE_VERSIONS_WITH_MEMBERS
    with transaction.atomic():
        live = (
            Audience.objects.select_for_update()
            .filter(pk=audience_id)
            .values_list("live_version_id", flat=True)
            .first()
        )
        newest = list(
            AudienceVersion.objects.filter(audience_id=audience_id, state=VersionState.READY)
            .order_by("-number")
            .values_list("pk", flat=True)[:keep]
        )
        doomed = list(
            AudienceVersion.objects.select_for_update()
            .filter(audience_id=audience_id, state=VersionState.READY, members_retained=True)
            .exclude(pk__in=[pk for pk in (*newest, live) if pk is not None])
            .values_list("pk", "number")
        )
        if not doomed:
            return []
        ids = [pk for pk, _ in doomed]
        Membership.objects.filter(version_id__in=ids).delete()
        AudienceVersion.objects.filter(pk__in=ids).update(members_retained=False)
    return sorted(number for _, number in doomed)


# --- recovery --------------------------------------------------------------------------------


def publish_jobs_recover(*, now: datetime | None = None) -> list[int]:
    """Publish jobs whose worker died or whose kick was lost (queued for LOST_AFTER):
    enqueue them again; the task's claim decides who runs. Run every 30 s by beat
    (`audiences.publish_recover`) and when a worker starts (`recover_on_worker_start`), so a
    SIGKILLed worker's job is taken over within a minute instead of blocking the audience.

    Dead: on PostgreSQL, no session holds the job's lock (checked per candidate); elsewhere,
    a heartbeat older than STALE_AFTER."""
    now = now or timezone.now()
    candidates = list(
        Job.objects.filter(kind__in=JOB_KINDS)
        .filter(
            Q(state=JobState.RUNNING, heartbeat_at__lt=stale_before(now))
            | Q(state=JobState.QUEUED, created_at__lt=now - LOST_AFTER)
        )
        .order_by("id")[:100]
    )
    stuck = [job.pk for job in candidates if job.state == JobState.QUEUED or not worker_alive(job, now)]
    from audiences.tasks import audience_publish_task

    for job_id in stuck:
        try:
            audience_publish_task.delay(job_id)
        except Exception:
            logger.warning("could not enqueue publish job %s", job_id, exc_info=True)
    return stuck


def recover_on_worker_start(sender: Any = None, **kwargs: Any) -> None:
    """celery's `worker_ready`: a worker that starts (a restart after a crash, above all)
    sweeps at once for jobs a dead worker left `running`, rather than waiting for beat."""
    try:
        recovered = publish_jobs_recover()
    except Exception:
        logger.warning("the publish recovery sweep at worker start failed", exc_info=True)
        return
    if recovered:
        logger.info("worker start: re-enqueued publish jobs %s", recovered)
