"""The manual review queue's actions: retry now, cancel, download the payload.

A vendor outage past the send job's retry budget leaves the campaign `partially_succeeded`
with its deferred sends and one open review item (campaigns/sending/runner.py). An operator
of the owning team (or an admin) decides, each choice a service, audited:

- retry: the deferred sends are queued again (one UPDATE) and a new send job sends them —
  each once, the sent ones are never touched; the campaign is active again;
- cancel: the deferred sends are skipped (`cancelled_in_review`), nothing more is sent;
- download: the payload the adapter would have sent, masked unless the role may see PII
  (compliance reviewers), to hand over by other means; every download is audited.
"""

from __future__ import annotations

from typing import Any, cast

from django.db import transaction
from django.utils import timezone

from audiences.profiles.selectors import profile_pii_decision
from campaigns.models import Campaign, CampaignState, ReviewItem, ReviewState, Send, SendState
from campaigns.review.errors import ReviewItemClosed
from campaigns.review.selectors import payload_of
from campaigns.sending.services import send_job_create
from governance import outbox, policy
from governance.actors import Actor
from governance.audit import trail as audit


def _locked_open(item: ReviewItem) -> ReviewItem:
    locked = ReviewItem.objects.select_for_update().select_related("campaign").get(pk=item.pk)
    if locked.state != ReviewState.OPEN:
        raise ReviewItemClosed(f"Review item {item.pk} was {locked.get_state_display().lower()} already.")
    return locked


def _resolve(actor: Actor, item: ReviewItem, state: str) -> None:
    item.state = state
    item.resolved_at = timezone.now()
    item.resolved_by = cast(Any, actor.user) if getattr(actor.user, "pk", None) else None
    item.save(update_fields=["state", "resolved_at", "resolved_by"])


def review_item_retry(*, actor: Actor, item: ReviewItem) -> ReviewItem:
    """Queue the deferred sends again and start a send job for them."""
    decision = policy.require(actor, "review_item.retry", item.campaign)
    with transaction.atomic():
        locked = _locked_open(item)
        campaign = (
            Campaign.objects.select_for_update(of=("self",)).select_related("environment").get(pk=locked.campaign_id)
        )
        requeued = Send.objects.filter(campaign=campaign, state=SendState.DEFERRED).update(
            state=SendState.QUEUED, reason=""
        )
        _resolve(actor, locked, ReviewState.RETRIED)
        campaign.state = CampaignState.ACTIVE
        campaign.finished_at = None
        campaign.job = send_job_create(campaign, actor)
        campaign.save(update_fields=["state", "finished_at", "job"])
        audit.record(
            actor,
            "review_item.retry",
            locked,
            decision=decision,
            changes={"requeued": requeued, "job": campaign.job_id, "campaign": campaign.pk},
        )
        outbox.emit(
            "review_item.resolved",
            campaign,
            {"review_item_id": locked.pk, "campaign_id": campaign.pk, "resolution": "retried", "recipients": requeued},
        )
    return locked


def review_item_cancel(*, actor: Actor, item: ReviewItem) -> ReviewItem:
    """Give up on the deferred sends: skipped (`cancelled_in_review`), nothing more is sent."""
    decision = policy.require(actor, "review_item.cancel", item.campaign)
    with transaction.atomic():
        locked = _locked_open(item)
        skipped = Send.objects.filter(campaign_id=locked.campaign_id, state=SendState.DEFERRED).update(
            state=SendState.SKIPPED, reason="cancelled_in_review"
        )
        _resolve(actor, locked, ReviewState.CANCELLED)
        audit.record(
            actor,
            "review_item.cancel",
            locked,
            decision=decision,
            changes={"skipped": skipped, "campaign": locked.campaign_id},
        )
        outbox.emit(
            "review_item.resolved",
            locked.campaign,
            {
                "review_item_id": locked.pk,
                "campaign_id": locked.campaign_id,
                "resolution": "cancelled",
                "recipients": skipped,
            },
        )
    return locked


def review_item_download(*, actor: Actor, item: ReviewItem) -> dict[str, Any]:
    """The payload of the item's deferred sends, masked unless the actor may see PII; audited."""
    decision = policy.require(actor, "review_item.download", item.campaign)
    masked = not profile_pii_decision(actor=actor).allowed
    payload = payload_of(item, masked=masked)
    with transaction.atomic():
        audit.record(
            actor,
            "review_item.download",
            item,
            decision=decision,
            changes={"recipients": len(payload["recipients"]), "pii_masked": masked},
        )
    return {"review_item": item.pk, "pii_masked": masked, "payload": payload}
