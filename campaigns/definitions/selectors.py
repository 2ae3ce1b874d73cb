"""Reads of campaigns: the list, one campaign. Everyone in an environment may view its
campaigns; another environment's campaign is a 404 (`campaign_not_found`), never a 403."""

from __future__ import annotations

from django.db.models import QuerySet

from campaigns.models import Campaign
from governance import policy
from governance.actors import Actor
from governance.models import Environment
from marketerapi.problems import NotFound


def campaign_queryset() -> QuerySet[Campaign]:
    """Campaigns with what their representation reads, in one query per page."""
    return Campaign.objects.select_related("environment", "owner_team", "audience", "destination", "job")


def campaign_list(*, actor: Actor) -> QuerySet[Campaign]:
    """Every campaign of the actor's environment, newest first."""
    policy.require(actor, "campaign.view")
    return campaign_queryset().filter(environment=actor.environment)


def campaign_get(*, actor: Actor, campaign_id: int) -> Campaign:
    """One campaign of the actor's environment, or 404 `campaign_not_found`."""
    policy.require(actor, "campaign.view")
    return campaign_in_environment(actor.environment, campaign_id)


def campaign_in_environment(environment: Environment, campaign_id: int) -> Campaign:
    try:
        return campaign_queryset().get(environment=environment, pk=campaign_id)
    except Campaign.DoesNotExist:
        raise NotFound(
            f"There is no campaign {campaign_id} in {environment.slug}.",
            code="campaign_not_found",
            hint="Check the id (GET /api/v1/campaigns/ lists them), and that your token belongs to the campaign's "
            "environment.",
        ) from None
