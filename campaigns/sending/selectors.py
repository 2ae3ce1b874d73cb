"""Reads of sending: a campaign's delivery statistics (GET /campaigns/{id}/sends)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from campaigns.models import Campaign, Send, SendState
from governance import policy
from governance.actors import Actor
from integrations.jobs.selectors import job_as_public


def campaign_sends(*, actor: Actor, campaign: Campaign) -> dict[str, Any]:
    """Queued, sending, sent, failed, deferred and skipped by reason — one grouped query —
    with the send job's state, progress and queue position."""
    policy.require(actor, "campaign.view")
    counts = {state: 0 for state in SendState.values}
    skipped: dict[str, int] = {}
    failed: dict[str, int] = {}
    rows = Send.objects.filter(campaign=campaign).values_list("state", "reason").annotate(n=Count("pk")).order_by()
    for state, reason, n in rows:
        counts[state] = counts.get(state, 0) + n
        if state == SendState.SKIPPED:
            skipped[reason or "unknown"] = skipped.get(reason or "unknown", 0) + n
        elif state == SendState.FAILED:
            failed[reason or "unknown"] = failed.get(reason or "unknown", 0) + n
    job = None
    if campaign.job is not None:
        public = job_as_public(campaign.job)
        job = {k: public[k] for k in ("id", "state", "progress", "queue_position", "warnings", "errors")}
        job["url"] = f"/api/v1/jobs/{campaign.job_id}"
    return {
        "campaign": campaign.pk,
        "state": campaign.state,
        "total": sum(counts.values()),
        **counts,
        "skipped_by_reason": dict(sorted(skipped.items())),
        "failed_by_reason": dict(sorted(failed.items())),
        "job": job,
    }
