"""Reads of webhooks and dead letters, scoped to the actor's environment: anything of
another environment is a 404, so ids do not leak."""

from __future__ import annotations

from django.db.models import QuerySet

from governance import policy
from governance.actors import Actor
from integrations.models import DeadLetter, WebhookDelivery, WebhookSubscription
from integrations.webhooks.errors import DeadLetterNotFound, WebhookNotFound


def webhook_list(*, actor: Actor) -> QuerySet[WebhookSubscription]:
    """The subscriptions of the actor's environment, newest first."""
    policy.require(actor, "webhook.view")
    return WebhookSubscription.objects.filter(environment=actor.environment).select_related("environment", "created_by")


def webhook_get(*, actor: Actor, webhook_id: int) -> WebhookSubscription:
    try:
        return webhook_list(actor=actor).get(pk=webhook_id)
    except WebhookSubscription.DoesNotExist:
        raise WebhookNotFound(f"No webhook subscription {webhook_id} in {actor.environment.slug}.") from None


def webhook_delivery_list(*, actor: Actor, subscription: WebhookSubscription) -> QuerySet[WebhookDelivery]:
    """A subscription's deliveries with their log, in a fixed number of queries per page."""
    policy.require(actor, "webhook.view", subscription)
    return (
        WebhookDelivery.objects.filter(subscription=subscription)
        .select_related("event", "event__environment")
        .prefetch_related("log")
    )


def dead_letter_list(*, actor: Actor) -> QuerySet[DeadLetter]:
    policy.require(actor, "dead_letter.view")
    return DeadLetter.objects.filter(environment=actor.environment).select_related("environment", "resolved_by")


def dead_letter_get(*, actor: Actor, dead_letter_id: int) -> DeadLetter:
    try:
        return dead_letter_list(actor=actor).get(pk=dead_letter_id)
    except DeadLetter.DoesNotExist:
        raise DeadLetterNotFound(f"No dead letter {dead_letter_id} in {actor.environment.slug}.") from None
