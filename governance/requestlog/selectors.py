"""Reads of the request log: a person's own requests, in the environment they act in."""

from __future__ import annotations

from django.db.models import QuerySet

from governance.actors import Actor
from governance.models import RequestLog


def request_log_list(*, actor: Actor) -> QuerySet[RequestLog]:
    """`request_log.view` (any role): the actor's own requests in their environment, newest
    first (others' are never shown)."""
    from governance import policy

    policy.require(actor, "request_log.view")
    if actor.user is None:
        return RequestLog.objects.none()
    return RequestLog.objects.filter(user_id=actor.user.pk, environment_id=actor.environment.pk).order_by("-id")
