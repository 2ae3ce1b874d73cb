"""Reads of jobs: one job of the actor's environment, the actor's failed jobs, a job's place
in the queue and its public shape (the API's and the portal's)."""

from __future__ import annotations

from typing import Any

from governance import policy
from governance.actors import Actor
from integrations.jobs import slots
from integrations.jobs.errors import JobNotFound
from integrations.jobs.services import TERMINAL
from integrations.models import Job, JobState

__all__ = ["TERMINAL", "job_as_public", "job_get", "job_list_failed", "queue_position"]


def job_get(*, actor: Actor, job_id: int) -> Job:
    """A job of the actor's environment; 404 for any other (ids do not leak)."""
    policy.require(actor, "job.view")
    job = (
        Job.objects.filter(pk=job_id, environment=actor.environment)
        .select_related("environment", "requested_by")
        .first()
    )
    if job is None:
        raise JobNotFound(f"No job {job_id} in {actor.environment.slug}.")
    return job


def job_list_failed(*, actor: Actor, limit: int = 5) -> list[Job]:
    """The actor's newest failed jobs in their environment (the portal's home page): one query."""
    policy.require(actor, "job.view")
    if actor.user is None:
        return []
    return list(
        Job.objects.filter(
            environment=actor.environment, requested_by_id=actor.user.pk, state=JobState.FAILED
        ).order_by("-id")[:limit]
    )


def queue_position(job: Job) -> int | None:
    """1 for the next queued job of its kind, 2 for the one after…; None unless queued.

    Heavy work (publishes, sends, exports) waits for its environment's job slots, so its
    line is the environment's queued heavy jobs; other workers are shared by every
    environment, so their line is all queued jobs of the kind.
    """
    if job.state != JobState.QUEUED:
        return None
    if slots.is_heavy(job.kind):
        return slots.position(job)
    return Job.objects.filter(kind=job.kind, state=JobState.QUEUED, id__lt=job.pk).count() + 1


# Keys of a job's notes for operators only (the raw exception text): the admin site shows them.
OPERATOR_ONLY = frozenset({"operator_detail"})


def _public_note(note: Any) -> Any:
    return {k: v for k, v in note.items() if k not in OPERATOR_ONLY} if isinstance(note, dict) else note


def job_as_public(job: Job) -> dict[str, Any]:
    progress = dict(job.progress or {})
    done, total = progress.get("done"), progress.get("total")
    if isinstance(done, int) and isinstance(total, int) and total > 0:
        progress["percent"] = round(100 * min(done, total) / total, 1)
    return {
        "id": job.pk,
        "kind": job.kind,
        "state": job.state,
        "environment": job.environment.slug,
        "target": {"type": job.target_type, "id": job.target_id} if job.target_type else None,
        "progress": progress,
        "queue_position": queue_position(job),
        "warnings": [_public_note(note) for note in job.warnings or []],
        "errors": [_public_note(note) for note in job.errors or []],
        "result": dict(job.result or {}),
        "requested_by": job.requested_by.get_username() if job.requested_by_id and job.requested_by else None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "heartbeat_at": job.heartbeat_at,
    }
