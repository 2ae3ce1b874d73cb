"""Reads of the outbox: the timeline of domain events of the actor's environment."""

from __future__ import annotations

from django.db.models import QuerySet

from governance import policy
from governance.actors import Actor
from governance.models import OutboxEvent


def domain_event_list(*, actor: Actor) -> QuerySet[OutboxEvent]:
    """Every domain event of the actor's environment; the API pages it newest first."""
    policy.require(actor, "domain_event.view")
    return OutboxEvent.objects.filter(environment=actor.environment).select_related("environment")
