"""The refusals of webhooks and dead letters, each with a stable code and a hint
(docs/webhooks.md). Bad input (a URL, event types, a secret) is an InvalidInput whose
`errors` point at the field; its codes are listed in webhooks/validation.py."""

from __future__ import annotations

from marketerapi.problems import Conflict, NotFound


class SecretUnreadable(RuntimeError):
    """The stored secret was encrypted under a SECRET_KEY that is neither current nor a fallback.

    Not a refusal of a request: the delivery records it as the attempt's error."""

    def __str__(self) -> str:
        return (
            "The signing secret cannot be decrypted: SECRET_KEY changed and the old key is not in "
            "SECRET_KEY_FALLBACKS. Rotate the subscription's secret (PATCH rotate_secret)."
        )


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    hint = "GET /api/v1/webhooks/ lists the subscriptions of your token's environment."


class DeadLetterNotFound(NotFound):
    code = "dead_letter_not_found"
    hint = "GET /api/v1/dead-letters/ lists the dead letters of your token's environment."


class DeadLetterResolved(Conflict):
    code = "dead_letter_resolved"
    title = "This dead letter was already replayed or discarded"
    hint = "Nothing to do; if it failed again, it is listed as a new dead letter."


class CannotReplay(Conflict):
    code = "cannot_replay"
    hint = "Discard it, and redo the work by hand."


class SubscriptionDeleted(Conflict):
    code = "subscription_deleted"
    hint = "Discard the dead letter; to receive such events again, create a subscription."


class DeliveryNotDead(Conflict):
    code = "delivery_not_dead"
    hint = "Discard the dead letter; the delivery is already being handled."


class EventDeleted(Conflict):
    code = "event_deleted"
    hint = "Discard the dead letter."
