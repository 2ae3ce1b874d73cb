"""Publishing audiences, the request side: publish and rollback, and their executors.

    POST …/publish ── audience_publish ──> 202 approval request    (the policy asks for approvals)
                                      └──> 202 job: a Job and a version `building`, created in one
                                           transaction; the task is enqueued after commit
    POST …/rollback ── audience_rollback ──> the same, for a new version that restores an earlier one

The worker side (runner.py) builds the version (build.py), makes it live (swap.py) and
delivers its diff. Members are evaluated when the task runs, not when the request was
made: consent withdrawn between preview and publish is honoured.

A rollback is a new version too: the members of the earlier version are copied (INSERT …
SELECT) when they are still kept, minus anyone who has since lost consent for the channel
or been suppressed; otherwise the version is rebuilt from its rules snapshot, with a
warning that today's data may give other members.

Archived audiences do not sync: they cannot be published or rolled back (409), and the
task re-checks the state under the audience's row lock before it goes live and before it
creates any push, so a version that finishes building after an archive neither goes live
nor reaches a destination.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from audiences.definitions.errors import AudienceArchived
from audiences.models import Audience, AudienceState, AudienceVersion, Membership, VersionState
from audiences.profiles.pii_filters import rules_pii_guard
from audiences.publishing.build import plural, rebuild_warning
from audiences.publishing.errors import (
    OutsideChangeWindow,
    PublishInProgress,
    VersionAlreadyLive,
    VersionNotFound,
    VersionNotReady,
)
from audiences.publishing.runner import PUBLISH, ROLLBACK, STEPS_TOTAL, fail_version, worker_alive
from audiences.reach import reachable_queryset
from audiences.rules import RulesCheck, rules_check_or_raise
from governance import policy
from governance.actors import Actor
from governance.approvals import ActionOutcome, Execution, fingerprint_of, request_or_run, windows
from governance.audit import trail as audit
from governance.limits import quotas
from governance.limits.services import quota_consume, quota_refund
from integrations.jobs import services as jobs
from integrations.models import Job, JobState
from marketerapi.problems import NotFound

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger("marketerapi.publish")

QUOTA = "publish"


@dataclass(frozen=True)
class VersionBuild:
    """A publish or rollback that runs now: the job building the new version (follow it at
    GET /api/v1/jobs/{id}) and what is left of the day's publish quota."""

    job: Job
    version: AudienceVersion
    quota: quotas.QuotaStatus | None = None


class _Context(dict[str, Any]):
    """A policy context whose metrics (`reach`) are computed when the engine first reads them.

    The engine reads metrics only in its last rule, the environment's approval policies,
    after token scopes, roles, object permissions and hooks. So one `policy.require` both
    refuses a caller who may not act before the database evaluates the audience (and
    audits the refusal), and gives the approval policy its reach: the policy is asked once.
    """

    def __init__(self, base: dict[str, Any] | None, **metrics: Callable[[], Any]) -> None:
        super().__init__(base or {})
        self._metrics = {name: compute for name, compute in metrics.items() if name not in self}

    def _fill(self, key: str) -> None:
        compute = self._metrics.pop(key, None)
        if compute is not None:
            self[key] = compute()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]  # dict.get's overloads, same result
        self._fill(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._fill(key)
        return super().__getitem__(key)

    def __bool__(self) -> bool:
        # `context or {}` must keep the metrics the engine has not read yet.
        return True


def publish_fingerprint(audience: Audience) -> str:
    """What approvers of a publish approved: the definition (rules, channel) as last edited.
    An edit after the request makes it stale; going live (or archiving) does not change it."""
    return fingerprint_of(
        "audiences.audience", audience.pk, audience.rules, audience.channel, audience.updated_at.isoformat()
    )


def publish_changes(request: Any, audience: Audience) -> list[dict[str, Any]]:
    """What changed in the audience since a publish request was filed (its `change`
    snapshot against the audience now): rules, channel, name; else when it was edited."""
    snapshot = request.change or {}
    changed = [
        {"field": name, "requested": snapshot.get(name), "now": getattr(audience, name)}
        for name in ("rules", "channel", "name")
        if name in snapshot and snapshot.get(name) != getattr(audience, name)
    ]
    edited = audience.updated_at.isoformat()
    if not changed and snapshot.get("edited_at") not in (None, edited):
        changed.append({"field": "edited_at", "requested": snapshot.get("edited_at"), "now": edited})
    return changed


def rollback_fingerprint(audience: Audience) -> str:
    """What approvers of a rollback approved: the live version it replaces."""
    return fingerprint_of("audiences.audience", audience.pk, "rollback", audience.live_version_id, audience.state)


def _approval_applies(actor: Actor, context: dict[str, Any]) -> bool:
    # The policy engine skips the approval rule in a sandbox and for approved requests;
    # reach is only needed where that rule is read.
    return not actor.environment.is_sandbox and not context.get("approved_request")


def _check_window(audience: Audience, action: str, context: dict[str, Any]) -> None:
    if context.get("approved_request"):
        return  # the approvals service ran it inside a window
    later = windows.run_at(audience.environment, action, timezone.now())
    if later is not None:
        when = windows.describe_moment(audience.environment, later)
        raise OutsideChangeWindow(
            f"In {audience.environment.slug}, publishes run only inside change windows "
            f"({windows.describe_windows(audience.environment)}); the next opens {when}.",
            hint=f"Publish again from {when}.",
            next_window_at=later.isoformat(),
        )


def _reach_and_diff(audience: Audience, live_versions: dict[int, int | None]) -> tuple[int, int, int]:
    """(reach, added, removed) now, in one aggregate query: the figures approvers read."""
    reachable = reachable_queryset(
        audience.environment, audience.rules, audience.channel, now=timezone.now(), live_versions=live_versions
    )
    live = audience.live_version
    if live is None:
        reach = reachable.count()
        return reach, reach, 0
    kept = Q(Exists(Membership.objects.filter(version_id=live.pk, profile_id=OuterRef("pk"))))
    counts = reachable.aggregate(reach=Count("pk"), kept=Count("pk", filter=kept))
    return counts["reach"], counts["reach"] - counts["kept"], (live.members or 0) - counts["kept"]


def _in_progress(locked: Audience, now: datetime) -> list[AudienceVersion]:
    """One build per audience at a time. A queued build is replaced by the new request (the
    newest definition wins, nothing has been done yet); a running one refuses it, unless its
    worker is gone (stale heartbeat and, on PostgreSQL, no worker holding the job's lock).
    Returns the builds to replace: `_supersede` them once the new job exists."""
    replaced = []
    for version in AudienceVersion.objects.filter(audience=locked, state=VersionState.BUILDING).select_related("job"):
        job = version.job
        if job is not None and job.state == JobState.RUNNING and worker_alive(job, now):
            raise PublishInProgress(
                f"Version {version.number} of {locked.name!r} is being built (job {job.pk}).",
                hint=f"Follow GET /api/v1/jobs/{job.pk}; publish again once it has finished.",
                job_id=job.pk,
            )
        replaced.append(version)
    return replaced


def _supersede(replaced: list[AudienceVersion], new_job: Job, now: datetime) -> None:
    """The builds `_in_progress` found replaced by `new_job`: each version failed, each job
    `cancelled` ("superseded by job N": one terminal state, whether a worker had started it
    or not), and the publish quota unit it was charged given back — it built nothing."""
    for version in replaced:
        job = version.job
        started = job is not None and job.state == JobState.RUNNING
        reason = f"superseded by job {new_job.pk}" + (" (its worker had stopped)" if started else "")
        fail_version(version, f"Not built: {reason}.")
        if job is None:
            continue
        note = jobs.note(
            "superseded",
            f"Version {version.number} was not built: {reason}.",
            f"Follow job {new_job.pk} (GET /api/v1/jobs/{new_job.pk}) instead.",
            superseded_by=new_job.pk,
        )
        if jobs.job_supersede(job, by=new_job.pk, error=note, now=now):
            charge = (job.params or {}).get("quota_charge")
            if charge:
                quota_refund(
                    name=charge["quota"],
                    subject=charge["subject"],
                    period_start=datetime.fromisoformat(charge["period_start"]),
                )


def _new_version(
    locked: Audience, actor: Actor, *, kind: str, rules: Any, channel: str, params: dict[str, Any], **extra: Any
) -> tuple[Job, AudienceVersion]:
    number = (AudienceVersion.objects.filter(audience=locked).aggregate(n=Max("number"))["n"] or 0) + 1
    # Actor.user is typed AbstractBaseUser; the user model is auth.User.
    user = cast("User", actor.user) if getattr(actor.user, "pk", None) else None
    job = jobs.job_create(
        environment=locked.environment,
        kind=kind,
        target=locked,
        params={**params, "version": number},
        requested_by=user,
        total=STEPS_TOTAL,
    )
    version = AudienceVersion.objects.create(
        audience=locked,
        number=number,
        rules=rules,
        channel=channel,
        state=VersionState.BUILDING,
        job=job,
        created_by=user,
        **extra,
    )
    return job, version


def _enqueue_after_commit(job_id: int) -> None:
    def kick() -> None:
        from audiences.tasks import audience_publish_task

        try:
            audience_publish_task.delay(job_id)
        except Exception:
            # The job stays queued; publish_jobs_recover runs it (LOST_AFTER).
            logger.warning("could not enqueue publish job %s; the recovery sweep will run it", job_id, exc_info=True)

    transaction.on_commit(kick, robust=True)


def audience_publish(
    *,
    actor: Actor,
    audience: Audience,
    context: dict[str, Any] | None = None,
    approval_refs: list[dict[str, Any]] | None = None,
) -> ActionOutcome[VersionBuild]:
    """Publish the audience's current definition as a new immutable version.

    Files an approval request when the environment's policy asks for one (pilot and
    production: reach above 50,000), with the reach and the diff against the live version
    in its summary. Otherwise creates the job and a `building` version (rules and channel
    snapshot, number = last + 1), consumes one `publish` quota unit, and enqueues the
    build after commit. Refusals: 403 (role, team), 409 (archived, a build running, an
    open request, outside a change window), 422 `invalid_rules`, 429 quota.
    """

    @functools.cache
    def checked() -> RulesCheck:
        if audience.state == AudienceState.ARCHIVED:
            raise AudienceArchived(f"{audience.name!r} is archived; archived audiences are not published.")
        found = rules_check_or_raise(audience.environment, audience.rules, self_id=audience.pk)
        # Members of rules that test personal data are an answer about it (issue 12).
        rules_pii_guard(
            actor=actor,
            environment=audience.environment,
            rules=audience.rules,
            purpose=PUBLISH,
            target=audience,
            audit_denial=PUBLISH,
        )
        return found

    @functools.cache
    def reach_and_diff() -> tuple[int, int, int]:
        return _reach_and_diff(audience, checked().live_versions)

    metrics = _Context(context, reach=lambda: reach_and_diff()[0])
    decision = policy.require(actor, PUBLISH, audience, metrics)
    checked()
    summary, change = "", {}
    if _approval_applies(actor, metrics):
        # Where an approval policy may apply, the reach is recorded even when none did
        # (the audit event's reach_at_request); approvers also read the diff.
        reach, added, removed = reach_and_diff()
        metrics["reach"] = reach
        if decision.needs_approval:
            summary = (
                f"Publish {audience.name!r}: adds {plural(added, 'person', 'people')}, "
                f"removes {removed:,} (reach {reach:,} by {audience.channel})"
            )
            # The snapshot approvers judge: a vote after the definition changed is refused
            # (approval_stale), with what changed (publish_changes).
            change = {
                "audience_id": audience.pk,
                "name": audience.name,
                "channel": audience.channel,
                "rules": audience.rules,
                "edited_at": audience.updated_at.isoformat(),
                "added": added,
                "removed": removed,
                "context": {"reach": reach},
            }
    return request_or_run(
        actor=actor,
        action=PUBLISH,
        target=audience,
        decision=decision,
        summary=summary,
        change=change,
        fingerprint=publish_fingerprint(audience) if decision.needs_approval else "",
        run=lambda: _publish_now(actor, audience, decision, metrics, approval_refs or []),
    )


def _publish_now(
    actor: Actor,
    audience: Audience,
    decision: policy.Decision,
    context: dict[str, Any],
    approval_refs: list[dict[str, Any]],
) -> VersionBuild:
    _check_window(audience, PUBLISH, context)
    now = timezone.now()
    with transaction.atomic():
        locked = Audience.objects.select_for_update(of=("self",)).select_related("environment").get(pk=audience.pk)
        if locked.state == AudienceState.ARCHIVED:
            raise AudienceArchived(f"{locked.name!r} was archived meanwhile; it is not published.")
        replaced = _in_progress(locked, now)
        quota = quota_consume(actor, QUOTA)
        # Where the unit was counted, so that a publish superseded before it is built gives it back.
        charge = (
            {"quota": QUOTA, "subject": quota.subject, "period_start": quota.period_start.isoformat()}
            if quota is not None
            else None
        )
        job, version = _new_version(
            locked,
            actor,
            kind=PUBLISH,
            rules=locked.rules,
            channel=locked.channel,
            params={
                "approval_request": context.get("approved_request"),
                "approval_refs": approval_refs,
                "quota_charge": charge,
            },
        )
        _supersede(replaced, job, now)
        audit.record(
            actor,
            PUBLISH,
            locked,
            decision=decision,
            changes={
                "version": version.number,
                "job": job.pk,
                "reach_at_request": context.get("reach"),
                "live_version": locked.live_version_id,
            },
            approval_refs=approval_refs,
        )
        _enqueue_after_commit(job.pk)
    return VersionBuild(job=job, version=version, quota=quota)


def audience_rollback(
    *,
    actor: Actor,
    audience: Audience,
    version: int,
    context: dict[str, Any] | None = None,
    approval_refs: list[dict[str, Any]] | None = None,
) -> ActionOutcome[VersionBuild]:
    """Make an earlier version live again, as a new version built by a job.

    Its members are copied when they are still kept (minus anyone who lost consent or was
    suppressed since); otherwise the version is rebuilt from its rules snapshot and the
    answer warns that today's data may give other members. Audited; the swap emits
    `audience.rolled_back` and the diff is pushed like a publish's. Files an approval
    request instead where an admin added an approval policy for `audience.rollback`.
    """

    @functools.cache
    def restored() -> AudienceVersion:
        return _rollback_target(audience, version)

    metrics = _Context(context, reach=lambda: restored().members or 0)
    decision = policy.require(actor, ROLLBACK, audience, metrics)
    target = restored()
    # Republishing rules that test personal data is publishing them (issue 12).
    rules_pii_guard(
        actor=actor,
        environment=audience.environment,
        rules=target.rules,
        purpose=ROLLBACK,
        target=audience,
        audit_denial=ROLLBACK,
    )
    summary, change = "", {}
    if decision.needs_approval:
        summary = f"Roll {audience.name!r} back to version {version} ({plural(target.members or 0, 'member')})"
        change = {"audience_id": audience.pk, "version": version, "context": {"reach": metrics["reach"]}}
    return request_or_run(
        actor=actor,
        action=ROLLBACK,
        target=audience,
        decision=decision,
        summary=summary,
        change=change,
        fingerprint=rollback_fingerprint(audience) if decision.needs_approval else "",
        warnings=[] if target.members_retained else [rebuild_warning(target)],
        run=lambda: _rollback_now(actor, audience, target, decision, metrics, approval_refs or []),
    )


def _rollback_target(audience: Audience, number: int) -> AudienceVersion:
    """The version a rollback restores: one of the audience's that went live and is not live now."""
    if audience.state == AudienceState.ARCHIVED:
        raise AudienceArchived(f"{audience.name!r} is archived; archived audiences are not rolled back.")
    target = AudienceVersion.objects.filter(audience=audience, number=number).first()
    if target is None:
        raise VersionNotFound(
            f"{audience.name!r} has no version {number}.",
            hint=f"GET /api/v1/audiences/{audience.pk}/versions lists its versions.",
        )
    if target.state != VersionState.READY:
        raise VersionNotReady(f"Version {number} of {audience.name!r} is {target.state}; it never went live.")
    if target.pk == audience.live_version_id:
        raise VersionAlreadyLive(f"Version {number} is the live version of {audience.name!r}.")
    return target


def _rollback_now(
    actor: Actor,
    audience: Audience,
    target: AudienceVersion,
    decision: policy.Decision,
    context: dict[str, Any],
    approval_refs: list[dict[str, Any]],
) -> VersionBuild:
    now = timezone.now()
    with transaction.atomic():
        locked = Audience.objects.select_for_update(of=("self",)).select_related("environment").get(pk=audience.pk)
        if locked.state == AudienceState.ARCHIVED:
            raise AudienceArchived(f"{locked.name!r} was archived meanwhile; it is not rolled back.")
        replaced = _in_progress(locked, now)
        job, new = _new_version(
            locked,
            actor,
            kind=ROLLBACK,
            rules=target.rules,
            channel=target.channel,
            params={
                "rollback_to": target.number,
                "approval_request": context.get("approved_request"),
                "approval_refs": approval_refs,
            },
            rebuilt_from=target,
        )
        _supersede(replaced, job, now)
        audit.record(
            actor,
            ROLLBACK,
            locked,
            decision=decision,
            changes={
                "to_version": target.number,
                "version": new.number,
                "job": job.pk,
                "live_version": locked.live_version_id,
                "members_retained": target.members_retained,
            },
            approval_refs=approval_refs,
        )
        _enqueue_after_commit(job.pk)
    return VersionBuild(job=job, version=new)


# --- approved requests ------------------------------------------------------------------------


def execute_publish(execution: Execution) -> dict[str, Any]:
    """An approved publish: the requester publishes (the approval rule is skipped)."""
    if execution.target is None:
        raise NotFound("The audience no longer exists.", code="audience_not_found")
    outcome = audience_publish(
        actor=execution.actor,
        audience=execution.target,
        context=execution.context,
        approval_refs=execution.approval_refs,
    )
    built = outcome.result
    assert built is not None  # an approved request runs (the approval rule is skipped)
    return {"audience": execution.target.pk, "job": built.job.pk, "version": built.version.number}


def execute_rollback(execution: Execution) -> dict[str, Any]:
    if execution.target is None:
        raise NotFound("The audience no longer exists.", code="audience_not_found")
    outcome = audience_rollback(
        actor=execution.actor,
        audience=execution.target,
        version=int(execution.change["version"]),
        context=execution.context,
        approval_refs=execution.approval_refs,
    )
    built = outcome.result
    assert built is not None  # an approved request runs (the approval rule is skipped)
    return {"audience": execution.target.pk, "job": built.job.pk, "version": built.version.number}
