"""The worker side of a campaign send: freeze the recipients, then send them batch by batch.

    claim the job ─> freeze (one INSERT … SELECT, campaigns/sending/freeze.py)
                 ─> per batch:  the campaign still active? (pause and cancel stop here)
                                claim rows   UPDATE … SET state='sending', batch=n … RETURNING
                                re-check     consent and suppression now (withdrawn → skipped)
                                send         adapter.send(batch) under the reference campaign-<id>-batch-<n>
                                mark         sent | failed (rows the vendor refused)
                 ─> completed | partially_succeeded

A message is never sent twice: every recipient has one Send row (UNIQUE(campaign, profile));
a row is claimed (queued → sending) in one conditional UPDATE before the vendor call and
marked after it. A batch a killed worker left `sending` is sent again under the same
reference only where the adapter's receiver deduplicates it (`send_idempotent`: the webhook's
Idempotency-Key, the file adapter's file name); elsewhere it is marked failed
(`interrupted`), never re-sent blind.

A vendor that is down (5xx, timeouts, breaker open, rate limited) is retried within the job
(CAMPAIGN_SEND_RETRIES, backoff through integrations.adapters.base.sleep); after that budget
the batch and everything still queued become `deferred` — kept, never dropped — the
campaign ends `partially_succeeded` and one review item waits in the manual review queue
(campaigns/review/). Progress is recorded per batch (also the job's heartbeat).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from audiences.models import Profile
from audiences.reach import reachability
from campaigns.models import Campaign, CampaignState, ReviewItem, ReviewState, Send, SendState, SkipReason
from campaigns.sending import freeze
from governance import outbox
from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import Door
from integrations import adapters
from integrations.adapters import base as adapter_base
from integrations.adapters.base import AdapterError, CircuitOpen, DeliveryResult, RateLimited, ServerFailure
from integrations.destinations import credentials as credentials_store
from integrations.destinations.selectors import breaker_of
from integrations.destinations.validation import target_guard
from integrations.jobs import services as jobs
from integrations.models import Job, JobState

logger = logging.getLogger("marketerapi.campaigns")

RETRYABLE = (CircuitOpen, ServerFailure, RateLimited)
MERGE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
RECIPIENT_FIELDS = (
    "external_id",
    "email",
    "phone",
    "push_token",
    "first_name",
    "last_name",
    "locale",
    "country",
    "region",
    "lifecycle_stage",
    "attributes",
)


def retries() -> int:
    return int(settings.CAMPAIGN_SEND_RETRIES)


def retry_backoff() -> float:
    return float(settings.CAMPAIGN_SEND_BACKOFF)


def stale_after() -> timedelta:
    # The same staleness after which a job no longer holds a slot (integrations/jobs/slots.py).
    return timedelta(seconds=float(settings.JOB_SLOT_STALE_SECONDS))


# --- rendering: the one place a recipient becomes what an adapter sends ----------------------


def _value(profile: dict[str, Any], name: str) -> str:
    if name.startswith("attributes."):
        value = (profile.get("attributes") or {}).get(name.split(".", 1)[1])
    elif name in profile:
        value = profile[name]
    else:
        value = (profile.get("attributes") or {}).get(name)
    return "" if value is None else str(value)


def render(template: str, profile: dict[str, Any]) -> str:
    return MERGE.sub(lambda match: _value(profile, match.group(1)), template or "")


def recipient(campaign: Campaign, profile: dict[str, Any]) -> dict[str, Any]:
    """One recipient in the adapters' send contract, with the message rendered for them."""
    assets = campaign.assets or {}
    properties = {"body": render(assets.get("body", ""), profile)}
    if assets.get("subject"):
        properties["subject"] = render(assets["subject"], profile)
    row: dict[str, Any] = {"external_id": profile["external_id"]}
    for name in ("email", "phone", "first_name", "last_name"):
        if profile.get(name):
            row[name] = profile[name]
    if campaign.channel == "push" and profile.get("push_token"):
        row["attributes"] = {"push_token": profile["push_token"]}
    row["properties"] = properties
    return row


def batch_payload(campaign: Campaign, profiles: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The batch an adapter's `send` receives (what the payload preview shows too)."""
    assets = campaign.assets or {}
    shared = {"campaign": campaign.name, "campaign_id": campaign.pk, "channel": campaign.channel}
    if assets.get("sender"):
        shared["sender"] = assets["sender"]
    return {"properties": shared, "recipients": [recipient(campaign, p) for p in profiles]}


def adapter_for(campaign: Campaign, reference: str, *, breaker: Any = None) -> adapters.Adapter:
    destination = campaign.destination
    target_guard(destination)
    cls = adapters.get(destination.adapter)
    credentials = credentials_store.destination_credentials(destination, cls.primary_credential if cls else None)
    return adapters.build(destination, credentials=credentials, breaker=breaker, reference=reference)


def batch_size(campaign: Campaign) -> int:
    cls = adapters.get(campaign.destination.adapter)
    size = int(getattr(cls, "send_batch_size", 100) or 100)
    configured = (campaign.destination.config or {}).get("batch_size")
    if isinstance(configured, int) and configured > 0:
        size = min(size, configured)
    return max(size, 1)


def reference_of(campaign_id: int, batch: int) -> str:
    return f"campaign-{campaign_id}-batch-{batch}"


# --- claiming ---------------------------------------------------------------------------------


def _claim(campaign_id: int, size: int, batch: int) -> list[tuple[int, int]]:
    """queued → sending for the next `size` rows, in one statement; (send id, profile id)."""
    table = connection.ops.quote_name(Send._meta.db_table)
    if connection.vendor == "postgresql":
        # A materialized CTE: with `id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` PostgreSQL
        # may run the subquery again per row and claim more than n.
        statement = f"""
            WITH picked AS MATERIALIZED (
                SELECT id FROM {table} WHERE campaign_id = %s AND state = %s ORDER BY id LIMIT %s
                FOR UPDATE SKIP LOCKED
            )
            UPDATE {table} AS send SET state = %s, batch = %s
            FROM picked WHERE send.id = picked.id AND send.state = %s
            RETURNING send.id, send.profile_id"""  # noqa: S608
        params: tuple[Any, ...] = (
            campaign_id,
            SendState.QUEUED.value,
            size,
            SendState.SENDING.value,
            batch,
            SendState.QUEUED.value,
        )
    else:
        statement = f"""
            UPDATE {table} SET state = %s, batch = %s
            WHERE id IN (SELECT id FROM {table} WHERE campaign_id = %s AND state = %s ORDER BY id LIMIT %s)
              AND state = %s
            RETURNING id, profile_id"""  # noqa: S608
        params = (SendState.SENDING.value, batch, campaign_id, SendState.QUEUED.value, size, SendState.QUEUED.value)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
        return sorted((int(a), int(b)) for a, b in cursor.fetchall())


def _recheck(campaign: Campaign, rows: list[tuple[int, int]]) -> tuple[set[int], list[dict[str, Any]]]:
    """The claimed rows' profiles, read once with whether the channel may reach them now
    (audiences/reach.py: consent, suppression, restriction, address): those who may not
    any more (withdrawn since the freeze) are skipped `withdrawn_mid_send` in one UPDATE.
    Returns (the skipped send ids, the others' profile rows in id order)."""
    gate = reachability(campaign.environment, campaign.channel)
    # Filtered in WHERE (not a flag in SELECT): PostgreSQL then probes the consent and
    # suppression indexes per profile instead of hashing every consent row of the channel.
    profiles = list(
        Profile.objects.filter(pk__in=[profile for _, profile in rows])
        .filter(gate.reachable)
        .order_by("pk")
        .values("pk", *RECIPIENT_FIELDS)
    )
    reachable = {p["pk"] for p in profiles}
    gone = [send for send, profile in rows if profile not in reachable]
    if gone:
        Send.objects.filter(pk__in=gone, state=SendState.SENDING).update(
            state=SendState.SKIPPED, reason=SkipReason.WITHDRAWN_MID_SEND
        )
    return set(gone), profiles


# --- one batch --------------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0
    error: AdapterError | None = None


def _send_with_retries(campaign: Campaign, batch: dict[str, Any], reference: str, job: Job | None) -> DeliveryResult:
    breaker = breaker_of(campaign.destination)
    attempt = 0
    while True:
        try:
            with adapter_for(campaign, reference, breaker=breaker) as adapter:
                return adapter.send(batch)
        except RETRYABLE as exc:
            attempt += 1
            if attempt > retries():
                raise
            wait = retry_backoff() * 2 ** (attempt - 1)
            if isinstance(exc, RateLimited):
                wait = max(wait, exc.retry_after)
            if job is not None:
                jobs.job_progress(job, done=int((job.progress or {}).get("done", 0)))  # heartbeat while waiting
            adapter_base.sleep(wait)


def send_batch(campaign: Campaign, rows: list[tuple[int, int]], batch: int, job: Job | None) -> BatchOutcome:
    """Send claimed rows (state sending): re-check, send, mark. Raises nothing retryable:
    a vendor outage past the retry budget comes back as `error` with the rows deferred."""
    outcome = BatchOutcome()
    gone, profiles = _recheck(campaign, rows)
    outcome.skipped = len(gone)
    live = [(send, profile) for send, profile in rows if send not in gone]
    if not live:
        return outcome
    send_ids = [send for send, _ in live]
    payload = batch_payload(campaign, profiles)
    reference = reference_of(campaign.pk, batch)
    now = timezone.now()
    try:
        result = _send_with_retries(campaign, payload, reference, job)
    except RETRYABLE as exc:
        outcome.deferred = Send.objects.filter(pk__in=send_ids, state=SendState.SENDING).update(
            state=SendState.DEFERRED, reason=exc.code
        )
        outcome.error = exc
        return outcome
    except (AdapterError, credentials_store.CredentialsUnavailable) as exc:
        error = exc if isinstance(exc, AdapterError) else AdapterError(str(exc), hint=getattr(exc, "hint", ""))
        outcome.failed = Send.objects.filter(pk__in=send_ids, state=SendState.SENDING).update(
            state=SendState.FAILED, reason=error.code
        )
        outcome.error = error
        return outcome
    refused = {w.get("external_id") for w in result.warnings if w.get("code") == "row_rejected"}
    by_external = {p["external_id"]: p["pk"] for p in profiles}
    refused_profiles = [by_external[e] for e in refused if e in by_external]
    if refused_profiles:
        outcome.failed = Send.objects.filter(
            pk__in=send_ids, profile_id__in=refused_profiles, state=SendState.SENDING
        ).update(state=SendState.FAILED, reason="vendor_rejected")
    vendor_id = str((result.details.get("dispatch_ids") or [""])[0])[:200]
    outcome.sent = Send.objects.filter(pk__in=send_ids, state=SendState.SENDING).update(
        state=SendState.SENT, sent_at=now, vendor_id=vendor_id
    )
    return outcome


# --- the job ----------------------------------------------------------------------------------


def _claim_job(job_id: int, now: datetime) -> Job | None:
    job = jobs.job_claim(job_id, now=now)
    if job is not None:
        return job
    current = Job.objects.filter(pk=job_id).first()
    if current is None or current.state != JobState.RUNNING:
        return None
    # A running job whose worker is gone (a redelivered message after a kill, or the sweep).
    return jobs.job_take_over(current, stale_before=now - stale_after(), now=now)


def _recover_interrupted(campaign: Campaign, job: Job) -> BatchOutcome:
    """Rows a killed worker left `sending`: sent again under their batch's reference where
    the receiver deduplicates, else marked failed (`interrupted`): never sent twice."""
    total = BatchOutcome()
    cls = adapters.get(campaign.destination.adapter)
    batches = list(
        Send.objects.filter(campaign=campaign, state=SendState.SENDING).values_list("batch", flat=True).distinct()
    )
    for batch in sorted(b for b in batches if b is not None):
        rows = list(
            Send.objects.filter(campaign=campaign, state=SendState.SENDING, batch=batch)
            .order_by("pk")
            .values_list("pk", "profile_id")
        )
        if getattr(cls, "send_idempotent", False):
            outcome = send_batch(campaign, rows, batch, job)
            for name in ("sent", "failed", "skipped", "deferred"):
                setattr(total, name, getattr(total, name) + getattr(outcome, name))
            if outcome.error is not None:
                total.error = outcome.error
        else:
            total.failed += Send.objects.filter(pk__in=[r[0] for r in rows], state=SendState.SENDING).update(
                state=SendState.FAILED, reason="interrupted"
            )
    return total


def send_job_run(job_id: int, *, now: datetime | None = None) -> Job | None:
    """Run (or resume) a campaign's send job. None when another worker has it."""
    job = _claim_job(job_id, now or timezone.now())
    if job is None:
        return None
    campaign = (
        Campaign.objects.select_related("environment", "destination", "destination__environment", "audience", "version")
        .filter(pk=int(job.params.get("campaign", 0)))
        .first()
    )
    if campaign is None or campaign.version is None:
        return jobs.job_fail(job, error=jobs.note("campaign_missing", "The campaign or its frozen version is gone."))
    if campaign.state != CampaignState.ACTIVE:
        return jobs.job_finish(job, state=JobState.CANCELLED, result={"stopped": campaign.state})
    try:
        added = 0
        # The freeze is one statement in one transaction: a row means it is done (a resumed
        # or retried job, a resume after pause), and running it again would add nothing.
        if not Send.objects.filter(campaign=campaign).exists():
            with transaction.atomic():
                added = freeze.freeze(campaign, campaign.version)
        jobs.job_progress(job, done=int((job.progress or {}).get("done", 0)), frozen=added or None)
        total = _recover_interrupted(campaign, job)
        error = total.error
        size = batch_size(campaign)
        batch = int(Send.objects.filter(campaign=campaign).aggregate(n=Max("batch"))["n"] or 0)
        queued = Send.objects.filter(campaign=campaign, state=SendState.QUEUED).count()
        done = 0
        while error is None or not isinstance(error, RETRYABLE):
            state = Campaign.objects.filter(pk=campaign.pk).values_list("state", flat=True).first()
            if state != CampaignState.ACTIVE:
                return jobs.job_finish(job, result={"stopped": state, **_counts(campaign)}, state=JobState.SUCCEEDED)
            batch += 1
            rows = _claim(campaign.pk, size, batch)
            if not rows:
                break
            outcome = send_batch(campaign, rows, batch, job)
            done += len(rows)
            jobs.job_progress(job, done=done, total=queued, batches=batch)
            if outcome.error is not None:
                error = outcome.error
                if isinstance(error, RETRYABLE):
                    return _defer_rest(campaign, job, error)
        return _complete(campaign, job, error)
    except Exception as exc:
        logger.exception("campaign send job %s failed", job.pk)
        _end(campaign, CampaignState.FAILED, "campaign.failed", {"error": type(exc).__name__})
        return jobs.job_fail(
            job,
            error=jobs.note(
                "send_failed",
                f"Sending stopped unexpectedly ({type(exc).__name__}).",
                "The error is in the worker's log; what was sent is recorded; resume to go on.",
            ),
        )


def _counts(campaign: Campaign) -> dict[str, int]:
    return dict(Send.objects.filter(campaign=campaign).values_list("state").annotate(n=Count("pk")).order_by())


def _end(campaign: Campaign, state: str, event: str, extra: dict[str, Any]) -> None:
    """The campaign's final state, audited and emitted, unless a person stopped it meanwhile."""
    actor = Actor.system(campaign.environment, door=Door.TASK)
    with transaction.atomic():
        locked = Campaign.objects.select_for_update(of=("self",)).filter(pk=campaign.pk).first()
        if locked is None or locked.state != CampaignState.ACTIVE:
            return
        locked.state = state
        locked.finished_at = timezone.now()
        locked.save(update_fields=["state", "finished_at"])
        audit.record(actor, event, locked, changes={"after": state, **extra})
        outbox.emit(event, locked, {"campaign_id": locked.pk, "name": locked.name, "state": state, **extra})


def _complete(campaign: Campaign, job: Job, error: AdapterError | None) -> Job:
    counts = _counts(campaign)
    problems = counts.get(SendState.FAILED, 0) + counts.get(SendState.DEFERRED, 0)
    state = CampaignState.PARTIALLY_SUCCEEDED if problems else CampaignState.COMPLETED
    _end(campaign, state, f"campaign.{state}", {"sends": counts})
    warnings = []
    if counts.get(SendState.FAILED):
        warnings.append(
            jobs.note(
                "sends_failed",
                f"{counts[SendState.FAILED]:,} message(s) were refused or their outcome is "
                "unknown; they are not sent again.",
                "GET /api/v1/campaigns/{id}/sends shows them by reason." + (f" Last: {error.message}" if error else ""),
            )
        )
    return jobs.job_finish(job, warnings=warnings, result={"sends": counts})


def _defer_rest(campaign: Campaign, job: Job, error: AdapterError) -> Job:
    """The vendor stayed down past the retry budget: everything still queued is deferred
    (one UPDATE), one review item waits, the campaign is partially_succeeded."""
    with transaction.atomic():
        Send.objects.filter(campaign=campaign, state=SendState.QUEUED).update(
            state=SendState.DEFERRED, reason=error.code
        )
        waiting = Send.objects.filter(campaign=campaign, state=SendState.DEFERRED).count()
        why = f"{campaign.destination.name} did not take the messages: {error.message}"
        updated = ReviewItem.objects.filter(campaign=campaign, state=ReviewState.OPEN).update(
            recipients=waiting, why=why[:1000]
        )
        if not updated:
            ReviewItem.objects.create(
                environment=campaign.environment,
                campaign=campaign,
                destination=campaign.destination,
                recipients=waiting,
                why=why[:1000],
            )
    _end(
        campaign,
        CampaignState.PARTIALLY_SUCCEEDED,
        "campaign.partially_succeeded",
        {"deferred": waiting, "why": error.code},
    )
    warning = jobs.note(
        "sends_deferred",
        f"{waiting:,} message(s) were not sent: {error.message} They wait in the manual review queue; nothing was "
        "lost.",
        "GET /api/v1/review-items/: retry them once the vendor is back, cancel them, or download the payload.",
    )
    return jobs.job_finish(
        job, warnings=[warning], result={"sends": _counts(campaign)}, state=JobState.PARTIALLY_SUCCEEDED
    )


def send_jobs_recover(*, now: datetime | None = None) -> list[int]:
    """Send jobs to run again: queued ones whose kick was lost (older than a minute; one
    waiting for a job slot is only claimed once a slot frees), running ones whose worker is
    gone (stale heartbeat)."""
    now = now or timezone.now()
    lost_kick = Q(state=JobState.QUEUED, created_at__lt=now - timedelta(minutes=1))
    dead_worker = Q(state=JobState.RUNNING, heartbeat_at__lt=now - stale_after())
    return list(
        Job.objects.filter(kind="campaign.send")
        .filter(lost_kick | dead_worker)
        .order_by("pk")
        .values_list("pk", flat=True)[:100]
    )
