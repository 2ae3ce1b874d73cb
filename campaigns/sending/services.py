"""The campaign lifecycle, the request side (PRODUCT.md §6 states):

    draft ──activate──> pending_approval ──approved──> scheduled | active
      │                                                   │          │
      └──activate (no approval asked)─────────────────────┘          ├──pause──> paused ──resume──> active
                                                                     ├──cancel──> cancelled
                                   the send job (runner.py) ends it: completed | partially_succeeded | failed

`campaign_activate` checks readiness (422 `campaign_not_ready` with the failing checks),
asks the policy engine once (`campaign.activate`: the owning team; the approval policy of
pilot and production, with `recipients` as its metric), and files an approval request or
runs now: under the campaign's row lock, a campaign that is not a draft any more refuses
(409), so a second activate never starts a second send; the audience's live version is
frozen on the campaign, the `campaign-activate` quota is counted, and either the send job
is created (enqueued after commit) or, with a schedule, the campaign waits as `scheduled`
for the beat task (`campaign_start_due`). Pause, resume and cancel take effect within one
batch: the runner re-reads the state before each.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from django.utils import timezone

from audiences.models import Audience
from campaigns.definitions.selectors import campaign_queryset
from campaigns.models import EDITABLE_STATES, Campaign, CampaignState, Send, SendState, SkipReason
from campaigns.sending.errors import CampaignNotReady, CampaignOutsideChangeWindow, CampaignStateConflict
from campaigns.sending.readiness import QUOTA, Readiness, readiness
from governance import outbox, policy
from governance.actors import Actor
from governance.approvals import ActionOutcome, Execution, fingerprint_of, request_or_run, windows
from governance.audit import trail as audit
from governance.limits.services import quota_consume
from governance.models import Door
from integrations.jobs import services as jobs
from integrations.models import Job

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger("marketerapi.campaigns")

ACTIVATE = "campaign.activate"
SEND_JOB = "campaign.send"


def activate_fingerprint(campaign: Campaign) -> str:
    """What approvers of an activation approved: the message, who gets it (the audience's live
    version), where it goes and when — not the campaign's own state, which the request itself
    moves to pending_approval."""
    live_version = Audience.objects.filter(pk=campaign.audience_id).values_list("live_version_id", flat=True).first()
    return fingerprint_of(
        "campaigns.campaign",
        campaign.pk,
        campaign.name,
        campaign.channel,
        campaign.audience_id,
        live_version,
        campaign.destination_id,
        campaign.assets,
        campaign.schedule_at.isoformat() if campaign.schedule_at else None,
        campaign.frequency_cap,
        campaign.frequency_period_days,
    )


def _event(campaign: Campaign, **extra: Any) -> dict[str, Any]:
    return {
        "campaign_id": campaign.pk,
        "name": campaign.name,
        "channel": campaign.channel,
        "state": campaign.state,
        "audience_id": campaign.audience_id,
        "version_id": campaign.version_id,
        **extra,
    }


def _enqueue_after_commit(job_id: int) -> None:
    def kick() -> None:
        from campaigns.tasks import campaign_send_task

        try:
            campaign_send_task.delay(job_id)
        except Exception:
            logger.warning(
                "could not enqueue campaign send job %s; the recovery sweep will run it", job_id, exc_info=True
            )

    transaction.on_commit(kick, robust=True)


def send_job_create(campaign: Campaign, actor: Actor) -> Job:
    """A queued send job for a campaign (inside the caller's transaction), enqueued after commit."""
    user = cast("User", actor.user) if getattr(actor.user, "pk", None) else None
    job = jobs.job_create(
        environment=campaign.environment,
        kind=SEND_JOB,
        target=campaign,
        params={"campaign": campaign.pk},
        requested_by=user,
    )
    _enqueue_after_commit(job.pk)
    return job


def campaign_readiness(*, actor: Actor, campaign: Campaign) -> dict[str, Any]:
    """The readiness checklist (a read: `campaign.view`)."""
    policy.require(actor, "campaign.view")
    return readiness(campaign, actor).as_dict()


def campaign_activate(
    *,
    actor: Actor,
    campaign: Campaign,
    context: dict[str, Any] | None = None,
    approval_refs: list[dict[str, Any]] | None = None,
) -> ActionOutcome[Campaign]:
    """Activate a draft campaign: send now, at its schedule, or once approved.

    Refusals: 403 (role, team), 422 `campaign_not_ready` (the failing checks, nothing
    written), 409 `campaign_state_conflict` (not a draft: a second activate),
    409 `approval_pending`, 409 `campaign_outside_change_window`, 429 quota.
    """
    base = _Lazy(context, recipients=lambda: checked().estimate["recipients"])

    @functools.cache
    def checked() -> Readiness:
        return readiness(campaign, actor)

    # One policy question; the approval policy reads `recipients` (computed then) last, after
    # roles and the owning team, so a caller who may not activate is refused before any count.
    decision = policy.require(actor, ACTIVATE, campaign, base)
    if not base.get("approved_request"):
        if campaign.state not in EDITABLE_STATES:
            raise _state_conflict(campaign, "activated")
        if not checked().ready:
            failing = checked().failing
            raise CampaignNotReady(
                f"{campaign.name!r} is not ready: {len(failing)} check(s) failed: "
                + "; ".join(check["message"] for check in failing),
                errors=[
                    {"pointer": "", "code": c["code"], "message": c["message"], "hint": c["hint"]} for c in failing
                ],
            )
    summary, change = "", {}
    if decision.needs_approval:
        recipients = base.get("recipients", 0)
        summary = f"Activate {campaign.name!r}: {recipients:,} recipients by {campaign.channel}"
        change = {"campaign_id": campaign.pk, "name": campaign.name, "context": {"recipients": recipients}}

    def run() -> Campaign:
        return _activate_now(actor, campaign, decision, base, approval_refs or [])

    outcome = request_or_run(
        actor=actor,
        action=ACTIVATE,
        target=campaign,
        decision=decision,
        summary=summary,
        change=change,
        fingerprint=activate_fingerprint(campaign) if decision.needs_approval else "",
        run=run,
    )
    if outcome.approval is not None:
        Campaign.objects.filter(pk=campaign.pk, state__in=list(EDITABLE_STATES)).update(
            state=CampaignState.PENDING_APPROVAL
        )
    return outcome


class _Lazy(dict[str, Any]):
    """A policy context whose metrics are computed when first read (the engine reads them
    only in its last rule, the environment's approval policies)."""

    def __init__(self, base: dict[str, Any] | None, **metrics: Callable[[], Any]) -> None:
        super().__init__(base or {})
        self._metrics = {name: compute for name, compute in metrics.items() if name not in self}

    def _fill(self, key: str) -> None:
        compute = self._metrics.pop(key, None)
        if compute is not None:
            self[key] = compute()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self._fill(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._fill(key)
        return super().__getitem__(key)

    def __bool__(self) -> bool:
        return True


def _state_conflict(campaign: Campaign, verb: str) -> CampaignStateConflict:
    return CampaignStateConflict(
        f"{campaign.name!r} is {campaign.get_state_display().lower()}; it cannot be {verb}.",
        state=campaign.state,
    )


def _activate_now(
    actor: Actor, campaign: Campaign, decision: policy.Decision, context: dict[str, Any], refs: list[dict[str, Any]]
) -> Campaign:
    now = timezone.now()
    approved = bool(context.get("approved_request"))
    if not approved and campaign.schedule_at is None:
        later = windows.run_at(campaign.environment, ACTIVATE, now)
        if later is not None:
            when = windows.describe_moment(campaign.environment, later)
            raise CampaignOutsideChangeWindow(
                f"In {campaign.environment.slug}, campaigns start only inside change windows "
                f"({windows.describe_windows(campaign.environment)}); the next opens {when}.",
                hint=f"Activate again from {when}, or schedule the campaign inside a window.",
            )
    allowed = {*EDITABLE_STATES, CampaignState.PENDING_APPROVAL} if approved else set(EDITABLE_STATES)
    with transaction.atomic():
        locked = (
            Campaign.objects.select_for_update(of=("self",))
            .select_related("audience", "environment", "owner_team")
            .get(pk=campaign.pk)
        )
        if locked.state not in allowed:
            raise _state_conflict(locked, "activated")
        version = locked.audience.live_version_id
        if version is None:
            raise CampaignNotReady(f"{locked.audience.name!r} has no live version any more.")
        quota_consume(actor, QUOTA)
        locked.version_id = version
        locked.activated_at = now
        locked.updated_at = now
        scheduled = locked.schedule_at is not None and locked.schedule_at > now
        if scheduled:
            locked.state = CampaignState.SCHEDULED
            locked.save(update_fields=["version", "activated_at", "updated_at", "state"])
        else:
            locked.state = CampaignState.ACTIVE
            locked.job = send_job_create(locked, actor)
            locked.save(update_fields=["version", "activated_at", "updated_at", "state", "job"])
        audit.record(
            actor,
            ACTIVATE,
            locked,
            decision=decision,
            changes={
                "state": locked.state,
                "version": version,
                "job": locked.job_id if not scheduled else None,
                "recipients_at_request": context.get("recipients"),
                "schedule_at": locked.schedule_at.isoformat() if locked.schedule_at else None,
            },
            approval_refs=refs,
        )
        outbox.emit("campaign.activated", locked, _event(locked, job_id=locked.job_id if not scheduled else None))
    return campaign_queryset().get(pk=locked.pk)


def execute_activate(execution: Execution) -> dict[str, Any]:
    """Run an approved activation as the requester (registered in CampaignsConfig.ready)."""
    outcome = campaign_activate(
        actor=execution.actor,
        campaign=execution.target,
        context=execution.context,
        approval_refs=execution.approval_refs,
    )
    campaign = cast(Campaign, outcome.result)
    return {"campaign": campaign.pk, "state": campaign.state, "job": campaign.job_id}


def _transition(
    actor: Actor,
    campaign: Campaign,
    action: str,
    allowed: set[CampaignState],
    new_state: str,
    event: str,
    verb: str,
    start_job: bool = False,
    extra: Any = None,
) -> Campaign:
    decision = policy.require(actor, action, campaign)
    with transaction.atomic():
        locked = Campaign.objects.select_for_update(of=("self",)).select_related("environment").get(pk=campaign.pk)
        if locked.state not in allowed:
            raise _state_conflict(locked, verb)
        before = locked.state
        locked.state = new_state
        locked.updated_at = timezone.now()
        fields = ["state", "updated_at"]
        if start_job:
            locked.job = send_job_create(locked, actor)
            fields.append("job")
        if new_state == CampaignState.CANCELLED:
            locked.finished_at = locked.updated_at
            fields.append("finished_at")
        locked.save(update_fields=fields)
        changes: dict[str, Any] = {"before": before, "after": new_state}
        if extra is not None:
            changes.update(extra(locked))
        audit.record(actor, action, locked, decision=decision, changes=changes)
        outbox.emit(event, locked, _event(locked))
    return campaign_queryset().get(pk=locked.pk)


def campaign_pause(*, actor: Actor, campaign: Campaign) -> Campaign:
    """Stop sending after the batch in flight; resume continues where it stopped."""
    return _transition(
        actor,
        campaign,
        "campaign.pause",
        {CampaignState.ACTIVE, CampaignState.SCHEDULED},
        CampaignState.PAUSED,
        "campaign.paused",
        "paused",
    )


def campaign_resume(*, actor: Actor, campaign: Campaign) -> Campaign:
    """Continue a paused campaign: a new send job picks up the queued recipients."""
    return _transition(
        actor,
        campaign,
        "campaign.resume",
        {CampaignState.PAUSED},
        CampaignState.ACTIVE,
        "campaign.resumed",
        "resumed",
        start_job=True,
    )


def campaign_cancel(*, actor: Actor, campaign: Campaign) -> Campaign:
    """Stop for good: the batch in flight finishes, every recipient still queued or deferred
    is skipped (reason `cancelled`) in one statement; what was sent stays on record."""

    def skip_rest(locked: Campaign) -> dict[str, Any]:
        skipped = Send.objects.filter(campaign=locked, state__in=[SendState.QUEUED, SendState.DEFERRED]).update(
            state=SendState.SKIPPED, reason=SkipReason.CANCELLED
        )
        return {"skipped": skipped}

    allowed = {
        *EDITABLE_STATES,
        CampaignState.PENDING_APPROVAL,
        CampaignState.SCHEDULED,
        CampaignState.ACTIVE,
        CampaignState.PAUSED,
    }
    return _transition(
        actor,
        campaign,
        "campaign.cancel",
        allowed,
        CampaignState.CANCELLED,
        "campaign.cancelled",
        "cancelled",
        extra=skip_rest,
    )


def campaign_start_due(*, now: Any = None) -> list[int]:
    """Start the scheduled campaigns whose time has come (the beat task; door `task`)."""
    now = now or timezone.now()
    started = []
    due = list(
        Campaign.objects.filter(state=CampaignState.SCHEDULED, schedule_at__lte=now)
        .select_related("environment")
        .values_list("pk", "environment_id")
    )
    for campaign_id, _environment_id in due:
        with transaction.atomic():
            locked = (
                Campaign.objects.select_for_update(of=("self",), skip_locked=True)
                .select_related("environment")
                .filter(pk=campaign_id, state=CampaignState.SCHEDULED)
                .first()
            )
            if locked is None:
                continue
            actor = Actor.system(locked.environment, door=Door.TASK)
            decision = policy.require(actor, "campaign.resume", locked)
            locked.state = CampaignState.ACTIVE
            locked.job = send_job_create(locked, actor)
            locked.updated_at = now
            locked.save(update_fields=["state", "job", "updated_at"])
            audit.record(
                actor,
                "campaign.resume",
                locked,
                decision=decision,
                changes={
                    "before": CampaignState.SCHEDULED,
                    "after": CampaignState.ACTIVE,
                    "job": locked.job_id,
                    "reason": "schedule reached",
                },
            )
            outbox.emit("campaign.activated", locked, _event(locked, job_id=locked.job_id, scheduled=True))
            started.append(locked.pk)
    return started
