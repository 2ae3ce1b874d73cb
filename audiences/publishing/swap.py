"""Step 2 of a publish or rollback job: the version goes live.

In one transaction under the audience's row lock (so two publishes never interleave):
the version becomes `ready` with its diff sizes, the audience's live version points at it,
the diff against the version it replaces is queued as pushes for every active destination
of the environment (removed ids, then added, PUSH_BATCH a push), one audit event and the
`audience.published` (or `audience.rolled_back`) domain event are written. Creating the
pushes here, in swap order, means a diff is never lost to a crash and two versions' diffs
never reach a destination out of order. Running the pushes is step 3 (runner.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from audiences.models import Audience, AudienceState, AudienceVersion, Membership, VersionState
from audiences.publishing.build import Build, overlap_with
from audiences.publishing.errors import BuildFailed, Superseded
from governance import outbox
from governance.actors import Actor
from governance.audit import trail as audit
from integrations.destinations import runner
from integrations.jobs import services as jobs
from integrations.models import Job

# External ids per push: ~15 bytes each, so a push stays a few hundred kB of JSON.
PUSH_BATCH = 10_000


def _version_ref(version: AudienceVersion | None) -> dict[str, Any] | None:
    return {"id": version.pk, "number": version.number} if version is not None else None


def swap_live(version: AudienceVersion, job: Job, build: Build, *, actor: Actor) -> AudienceVersion | None:
    """Step 2, in one transaction under the audience's row lock: the version goes live, and
    the diff against the version it replaces is queued for every active destination.

    Creating the pushes here, in swap order, means a diff is never lost to a crash and two
    versions' diffs never reach a destination out of order. Returns the version replaced.
    Raises Superseded when a newer publish replaced this one, BuildFailed when the audience
    was archived meanwhile (archived audiences do not sync: nothing goes live, no push).
    """
    now = timezone.now()
    rollback = version.rebuilt_from_id is not None
    with transaction.atomic():
        # Two publishes of one audience never interleave their swaps: this lock orders them.
        locked = (
            Audience.objects.select_for_update(of=("self",))
            .select_related("environment", "owner_team", "live_version")
            .get(pk=version.audience_id)
        )
        if locked.state == AudienceState.ARCHIVED:
            raise BuildFailed(
                "audience_archived",
                f"{locked.name!r} was archived while the version was built.",
                "Archived audiences do not sync; nothing was sent anywhere.",
            )
        previous = locked.live_version
        base_id = previous.pk if previous is not None else None
        overlap = build.overlap if base_id == build.base_id else overlap_with(version.pk, base_id)
        added = build.members - overlap
        removed = (previous.members or 0) - overlap if previous is not None else 0
        went = AudienceVersion.objects.filter(pk=version.pk, state=VersionState.BUILDING).update(
            state=VersionState.READY, added=added, removed=removed, built_at=now
        )
        if went != 1:
            raise Superseded()
        version.refresh_from_db()
        before_state = locked.state
        locked.live_version = version
        locked.state = AudienceState.PUBLISHED
        locked.save(update_fields=["live_version", "state"])
        counts = {"matching": build.matching, "members": build.members, "added": added, "removed": removed}
        refs = job.params.get("approval_refs") or []
        event = "audience.rolled_back" if rollback else "audience.published"
        restored = version.rebuilt_from if rollback else None
        outbox.emit(
            event,
            locked,
            {
                "id": locked.pk,
                "name": locked.name,
                "channel": locked.channel,
                "version": _version_ref(version),
                "previous_version": _version_ref(previous),
                **({"rolled_back_to": restored.number} if restored is not None else {}),
                "counts": counts,
                "by": actor.label,
                "job": job.pk,
                "approval_request": job.params.get("approval_request"),
            },
        )
        # The job shows the live version and its counts while the diff is still delivered.
        shown = {"version": _version_ref(version), "previous_version_id": base_id, "counts": counts}
        job.result = jobs.job_amend(job.pk, lambda row: setattr(row, "result", {**(row.result or {}), **shown})).result
        pushes = runner.members_push(
            environment=locked.environment,
            job=job,
            removed=_diff_ids(base_id, version.pk) if base_id else (),
            added=_diff_ids(version.pk, base_id),
            batch_size=PUSH_BATCH,
        )
        audit.record(
            actor,
            event,
            locked,
            changes={
                "before": {"live_version": _version_ref(previous), "state": before_state},
                "after": {"live_version": _version_ref(version), "state": locked.state},
                "counts": counts,
                "job": job.pk,
                "pushes": pushes,
            },
            approval_refs=refs,
        )
    return previous


def _diff_ids(from_id: int, minus_id: int | None) -> Iterator[str]:
    """External ids of the members of `from_id` that `minus_id` lacks (an anti-join over
    the composite key), in profile order."""
    rows = Membership.objects.filter(version_id=from_id)
    if minus_id:
        rows = rows.exclude(Exists(Membership.objects.filter(version_id=minus_id, profile_id=OuterRef("profile_id"))))
    return rows.order_by("profile_id").values_list("profile__external_id", flat=True).iterator(chunk_size=PUSH_BATCH)
