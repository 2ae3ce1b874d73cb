"""The worker side of exports: stream the members of the audience's live version to a file.

    export_job_run(job_id)
      claim the job (queued → running), or take over one whose worker died
      read the members in batches from a server-side cursor (PostgreSQL; an iterator on
      SQLite): constant memory however large the audience
      write each batch (masked unless a PII export) to a temporary file, recording progress
      (the job's heartbeat) per batch
      publish the file under its final name only when it is complete (storage.writing),
      then mark the export `ready` with rows, size and expires_at, emit `export.completed`

A failed export is marked `failed` with the reason and never has a file; a killed worker
leaves only a temporary file, and the redelivered task (or the sweep) starts the export
over from the beginning — an export writes nothing anyone sees until it is complete, so
starting over is safe.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audiences.exports import storage
from audiences.exports.columns import Writer, plan_fields, row_transform, select_expressions
from audiences.exports.copy import copy_members
from audiences.exports.services import JOB_KIND
from audiences.models import AudienceState, AudienceVersion, Export, ExportState, Membership
from governance import outbox
from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import Door
from integrations.jobs import services as jobs
from integrations.models import Job, JobState

logger = logging.getLogger("marketerapi.exports")

BATCH = 10_000
# A running export whose heartbeat is older than this (and, on PostgreSQL, whose lock no
# session holds) lost its worker.
STALE_AFTER = timedelta(minutes=2)
# A queued export older than this lost its kick.
LOST_AFTER = timedelta(minutes=2)
# Taken over this many times: the worker keeps dying on it; fail it.
MAX_ATTEMPTS = 3
_LOCK_CLASS = 0x4D4B4558  # "MKEX"
# On PostgreSQL an export that masks nothing is written by COPY (copy.py).
COPY_FAST_PATH = True


def _try_lock(job_id: int) -> bool:
    """The job's session-level advisory lock (PostgreSQL): held while a worker runs it, freed
    when a killed worker's connection closes."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, job_id])
        return bool(cursor.fetchone()[0])


def _unlock(job_id: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, job_id])


def _worker_alive(job: Job, now: datetime) -> bool:
    if connection.vendor == "postgresql":
        # The lock is the truth: a killed worker's session is gone at once.
        if _try_lock(job.pk):
            _unlock(job.pk)
            return False
        return True
    return job.heartbeat_at is not None and job.heartbeat_at > now - STALE_AFTER


def _claim(job_id: int, now: datetime) -> Job | None:
    job = jobs.job_claim(job_id, now=now)
    if job is not None:
        return job
    running = Job.objects.filter(pk=job_id, kind=JOB_KIND, state=JobState.RUNNING).first()
    if running is None or _worker_alive(running, now):
        return None
    stale_before = now + timedelta(seconds=1) if connection.vendor == "postgresql" else now - STALE_AFTER
    return jobs.job_take_over(running, stale_before=stale_before, now=now)


def export_job_run(job_id: int) -> Job | None:
    """Run the export of the job; None when it is not this worker's (another runs it, it is
    finished, or the environment's slots are full and it waits its turn)."""
    now = timezone.now()
    job = _claim(job_id, now)
    if job is None:
        return None
    if not _try_lock(job.pk):
        return None
    try:
        return _run(job)
    finally:
        _unlock(job.pk)


def _fail(job: Job, export: Export | None, code: str, message: str, hint: str) -> Job:
    if export is not None:
        Export.objects.filter(pk=export.pk).exclude(state=ExportState.READY).update(
            state=ExportState.FAILED, error=message, finished_at=timezone.now()
        )
    return jobs.job_fail(job, error=jobs.note(code, message, hint))


def _run(job: Job) -> Job:
    export = Export.objects.select_related("audience", "environment", "created_by").filter(job_id=job.pk).first()
    if export is None:
        return jobs.job_fail(job, error=jobs.note("export_missing", "The export of this job was deleted.", ""))
    if export.state == ExportState.READY:
        return jobs.job_finish(job, result={"export": export.pk, "rows": export.rows})
    if job.attempts > MAX_ATTEMPTS:
        return _fail(
            job,
            export,
            "worker_lost",
            f"The worker stopped {job.attempts - 1} times while writing the export.",
            f"Run the export again; if it stops again, ask a platform engineer to look at the workers (job {job.pk}).",
        )
    audience = export.audience
    if audience is None or audience.state != AudienceState.PUBLISHED or audience.live_version_id is None:
        return _fail(
            job,
            export,
            "export_audience_not_published",
            "The audience has no live version any more.",
            "Publish the audience again, then export it.",
        )
    try:
        return _write(job, export, audience.live_version_id)
    except Exception as exc:  # the export fails cleanly: no file, the reason said
        logger.exception("export %s failed", export.pk)
        return _fail(
            job,
            export,
            "export_failed",
            f"The export could not be written: {type(exc).__name__}.",
            f"Run it again; if it fails again, ask a platform engineer, quoting job {job.pk}.",
        )


def _write(job: Job, export: Export, version_id: int) -> Job:
    Export.objects.filter(pk=export.pk).update(state=ExportState.RUNNING, version_id=version_id, error="")
    plan, unknown = plan_fields(export.environment, export.fields)
    if unknown:
        return _fail(
            job,
            export,
            "export_field_unknown",
            unknown[0]["message"],
            "Run the export again with the fields the attribute catalogue knows.",
        )
    transform = row_transform(plan, unmasked=export.pii)
    expressions = select_expressions(plan.fields)
    queryset = (
        Membership.objects.filter(version_id=version_id)
        .order_by("profile_id")
        .annotate(**expressions)
        .values_list(*expressions)
    )
    total = AudienceVersion.objects.filter(pk=version_id).values_list("members", flat=True).first()
    jobs.job_progress(job, done=0, total=total, phase="writing")
    final_name = f"{export.environment.slug}/export-{export.pk}.{export.format}"
    rows = 0
    if COPY_FAST_PATH and connection.vendor == "postgresql" and (export.pii or not plan.pii_fields):
        # Nothing to mask: the database writes the rows (copy.py).
        with storage.writing(final_name) as out:
            rows, size = copy_members(
                out,
                fmt=export.format,
                fields=plan.fields,
                version_id=version_id,
                on_chunk=lambda done: jobs.job_progress(job, done=done, total=total),
            )
        return _finish(job, export, version_id, final_name, rows, size)
    with storage.writing(final_name) as out:
        writer = Writer(out, export.format, plan.fields)
        iterator = queryset.iterator(chunk_size=BATCH)
        while True:
            batch = list(islice(iterator, BATCH))
            if not batch:
                break
            writer.write_rows([transform(row) for row in batch])
            rows += len(batch)
            jobs.job_progress(job, done=rows, total=total)
        writer.flush()
        size = writer.size
    return _finish(job, export, version_id, final_name, rows, size)


def _finish(job: Job, export: Export, version_id: int, final_name: str, rows: int, size: int) -> Job:
    """The file is in place: the export is ready, announced and audited; the job finished."""
    now = timezone.now()
    expires = now + timedelta(hours=settings.EXPORTS_TTL_HOURS)
    with transaction.atomic():
        Export.objects.filter(pk=export.pk).update(
            state=ExportState.READY, rows=rows, size=size, file_name=final_name, finished_at=now, expires_at=expires
        )
        export.refresh_from_db()
        outbox.emit(
            "export.completed",
            export,
            {
                "export": export.pk,
                "audience": export.audience_id,
                "version": version_id,
                "format": export.format,
                "pii": export.pii,
                "rows": rows,
                "size": size,
                "expires_at": expires.isoformat(),
            },
        )
        audit.record(
            _task_actor(export, job),
            "export.completed",
            export,
            changes={"rows": rows, "size": size, "expires_at": expires.isoformat(), "version": version_id},
        )
        finished = jobs.job_finish(job, result={"export": export.pk, "rows": rows, "size": size})
    return finished


def _task_actor(export: Export, job: Job) -> Actor:
    if export.created_by is None:
        return Actor.system(export.environment, door=Door.TASK, request_id=f"job-{job.pk}")
    return Actor(user=export.created_by, environment=export.environment, door=Door.TASK, request_id=f"job-{job.pk}")


def exports_recover(*, now: datetime | None = None) -> list[int]:
    """Export jobs whose worker died or whose kick was lost: enqueue them again (the task's
    claim decides who runs). On PostgreSQL a running export whose job lock no session holds
    lost its worker at once, whatever its heartbeat says; elsewhere, after STALE_AFTER."""
    now = now or timezone.now()
    lost = list(
        Job.objects.filter(kind=JOB_KIND, state=JobState.QUEUED, created_at__lt=now - LOST_AFTER)
        .order_by("id")
        .values_list("pk", flat=True)[:100]
    )
    running = Job.objects.filter(kind=JOB_KIND, state=JobState.RUNNING).order_by("id")[:100]
    dead = [job.pk for job in running if not _worker_alive(job, now)]
    from audiences.tasks import export_task

    stuck = [*dead, *lost]
    for job_id in stuck:
        try:
            export_task.delay(job_id)
        except Exception:
            logger.warning("could not enqueue export job %s", job_id, exc_info=True)
    return stuck


def exports_sweep() -> dict[str, Any]:
    """The periodic sweep: expire files, then pick up lost exports."""
    from audiences.exports.services import exports_expire

    return {"expired": exports_expire(), "recovered": exports_recover()}
