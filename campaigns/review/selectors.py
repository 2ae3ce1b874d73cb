"""Reads of the manual review queue: what a vendor outage left waiting, and its payload."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from audiences.profiles.pii import mask_pii
from campaigns.models import ReviewItem, ReviewState, Send, SendState
from campaigns.sending.runner import RECIPIENT_FIELDS, batch_payload
from governance import policy
from governance.actors import Actor
from marketerapi.problems import NotFound


def review_item_list(*, actor: Actor, state: str | None = ReviewState.OPEN) -> QuerySet[ReviewItem]:
    """The environment's review items (open ones by default), newest first."""
    policy.require(actor, "review_item.view")
    items = ReviewItem.objects.filter(environment=actor.environment).select_related(
        "campaign", "campaign__owner_team", "destination"
    )
    return items.filter(state=state) if state else items


def review_item_get(*, actor: Actor, item_id: int) -> ReviewItem:
    policy.require(actor, "review_item.view")
    item = (
        ReviewItem.objects.filter(environment=actor.environment, pk=item_id)
        .select_related("campaign", "campaign__owner_team", "campaign__environment", "destination")
        .first()
    )
    if item is None:
        raise NotFound(
            f"There is no review item {item_id} in {actor.environment.slug}.",
            code="review_item_not_found",
            hint="GET /api/v1/review-items/ lists them.",
        )
    return item


def payload_of(item: ReviewItem, *, masked: bool) -> dict[str, Any]:
    """The batch the adapter would have sent for the item's deferred recipients (masked: the
    emails, phones and names shown as for a role that may not see PII)."""
    from audiences.models import Profile

    profile_ids = Send.objects.filter(campaign=item.campaign, state=SendState.DEFERRED).values("profile_id")
    profiles = list(Profile.objects.filter(pk__in=profile_ids).order_by("pk").values("pk", *RECIPIENT_FIELDS))
    if masked:
        profiles = [mask_pii(p) for p in profiles]
    return batch_payload(item.campaign, profiles)
