"""Reads of suppression lists, scoped to the actor's environment."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from audiences.models import SuppressionList
from governance import policy
from governance.actors import Actor


def suppression_lists(*, actor: Actor) -> QuerySet[SuppressionList]:
    """The lists of the actor's environment with their entry counts (one query per page)."""
    policy.require(actor, "suppression.view")
    return (
        SuppressionList.objects.filter(environment=actor.environment)
        .select_related("created_by")
        .annotate(entry_count=Count("entries"))
    )
