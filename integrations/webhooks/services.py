"""Webhook subscriptions and dead letters: the services that change them.

- A subscription belongs to one environment and names the domain event types it wants
  (`governance.outbox.EVENT_TYPES`). Its signing secret (webhooks/signing.py) is generated
  when none is sent, returned once, and stored only encrypted.
- Services ask `governance.policy.require` before their transaction, make the change,
  and write one audit event as the transaction's last write. The sending machinery lives
  in integrations/webhooks/delivery.py and calls `webhook_pause_failing` from here.
- Dead letters are generic (webhook deliveries, outbox dispatches, destination pushes):
  `dead_letter_replay` and `dead_letter_discard` run the handlers of the letter's kind
  (webhooks/dead_letters.py); the handlers of webhook deliveries and outbox dispatches
  are here too (`DELIVERY_DEAD_LETTERS`, `DISPATCH_DEAD_LETTERS`).

docs/webhooks.md is the integrator's side of this contract; reads are in selectors.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from django.utils import timezone

from governance import policy
from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import Door, OutboxEvent
from integrations.models import DeadLetter, DeliveryState, SubscriptionState, WebhookDelivery, WebhookSubscription
from integrations.webhooks.dead_letters import DeadLetterKind, dead_letter_kind
from integrations.webhooks.errors import (
    CannotReplay,
    DeadLetterResolved,
    DeliveryNotDead,
    EventDeleted,
    SubscriptionDeleted,
)
from integrations.webhooks.signing import encrypt_secret, generate_secret
from integrations.webhooks.validation import invalid, validate_event_types, validate_secret, validate_url

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# A subscription whose every attempt has failed for this long is paused (its receiver is
# gone or broken; retrying for ever only fills the dead-letter list).
PAUSE_AFTER = timedelta(hours=24)


# --- subscription services ------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionChange:
    subscription: WebhookSubscription
    # The signing secret, only when it was generated or rotated by this call: shown once.
    secret: str | None = None
    changed: list[str] = field(default_factory=list)


def _summary(sub: WebhookSubscription) -> dict[str, Any]:
    return {
        "url": sub.url,
        "event_types": list(sub.event_types),
        "description": sub.description,
        "state": sub.state,
        "paused_reason": sub.paused_reason,
    }


def webhook_create(
    *,
    actor: Actor,
    url: str,
    event_types: list[str],
    secret: str | None = None,
    description: str = "",
) -> SubscriptionChange:
    """Subscribe `url` to `event_types` in the actor's environment.

    The secret is generated when none is given; either way it is returned once here and
    stored only encrypted.
    """
    decision = policy.require(actor, "webhook.create")
    url = validate_url(url, actor.environment)
    types = validate_event_types(event_types)
    chosen = validate_secret(secret) if secret is not None else generate_secret()
    with transaction.atomic():
        sub = WebhookSubscription.objects.create(
            environment=actor.environment,
            url=url,
            event_types=types,
            description=description or "",
            secret_encrypted=encrypt_secret(chosen),
            # Actor.user is typed AbstractBaseUser; the user model is auth.User.
            created_by=cast("User | None", actor.user),
        )
        audit.record(
            actor,
            "webhook.create",
            sub,
            decision=decision,
            changes={"after": {**_summary(sub), "secret": "generated" if secret is None else "provided"}},
        )
    return SubscriptionChange(sub, chosen, ["created"])


def webhook_update(
    *,
    actor: Actor,
    subscription: WebhookSubscription,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    state: str | None = None,
    secret: str | None = None,
    rotate_secret: bool = False,
    now: datetime | None = None,
) -> SubscriptionChange:
    """Change a subscription; None leaves a field as it is.

    `state="active"` on a paused subscription resumes it: the failure clock restarts and
    its pending deliveries are due at once. `state="paused"` holds its deliveries (they
    stay pending) and it receives no new events until resumed.
    """
    decision = policy.require(actor, "webhook.update", subscription)
    now = now or timezone.now()
    if secret is not None and rotate_secret:
        raise invalid(
            "/rotate_secret",
            "conflicting_fields",
            "Send either `secret` or `rotate_secret`, not both.",
            "Send `secret` to set one you chose, or `rotate_secret: true` to have one generated.",
        )
    if state is not None and state not in SubscriptionState.values:
        raise invalid(
            "/state",
            "invalid_state",
            f"{state!r} is not a subscription state.",
            f"Use one of: {', '.join(SubscriptionState.values)}.",
        )
    new_url = validate_url(url, actor.environment) if url is not None else None
    new_types = validate_event_types(event_types) if event_types is not None else None
    new_secret = validate_secret(secret) if secret is not None else generate_secret() if rotate_secret else None

    resumed = False
    with transaction.atomic():
        sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        before = _summary(sub)
        changed: list[str] = []
        if new_url is not None and new_url != sub.url:
            sub.url = new_url
            changed.append("url")
        if new_types is not None and new_types != sub.event_types:
            sub.event_types = new_types
            changed.append("event_types")
        if description is not None and description != sub.description:
            sub.description = description
            changed.append("description")
        if new_secret is not None:
            sub.secret_encrypted = encrypt_secret(new_secret)
            changed.append("secret_encrypted")
        if state is not None and state != sub.state:
            sub.state = state
            changed.append("state")
            if state == SubscriptionState.ACTIVE:
                sub.paused_reason = ""
                sub.failing_since = None
                changed += ["paused_reason", "failing_since"]
                resumed = True
            else:
                sub.paused_reason = f"Paused by {actor.label} on {now:%Y-%m-%d %H:%M} UTC."[:300]
                changed.append("paused_reason")
        if not changed:
            return SubscriptionChange(sub, None, [])
        sub.save(update_fields=changed)
        if resumed:
            # Held deliveries are due now, not at the end of a backoff that ran while paused.
            WebhookDelivery.objects.filter(subscription=sub, state=DeliveryState.PENDING).update(next_attempt_at=now)
            transaction.on_commit(_kick_deliveries, robust=True)
        after = _summary(sub)
        audit.record(
            actor,
            "webhook.update",
            sub,
            decision=decision,
            changes={
                "before": {k: v for k, v in before.items() if before[k] != after[k]},
                "after": {k: v for k, v in after.items() if before[k] != after[k]},
                **({"secret": "rotated"} if new_secret is not None else {}),
            },
        )
    public_changed = [name for name in changed if name not in ("failing_since",)]
    return SubscriptionChange(sub, new_secret if rotate_secret else None, public_changed)


def webhook_delete(*, actor: Actor, subscription: WebhookSubscription) -> None:
    """Delete a subscription with its deliveries and their log; its open dead letters stay
    (replaying one then answers 409, discarding it works). The audit event and the
    subscription's history keep what it was."""
    decision = policy.require(actor, "webhook.delete", subscription)
    with transaction.atomic():
        sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        target = audit.describe_target(sub)
        before = _summary(sub)
        sub.delete()
        audit.record(actor, "webhook.delete", target, decision=decision, changes={"before": before})


def webhook_pause_failing(
    *, subscription_id: int, failing_since: datetime, last_error: str, now: datetime | None = None
) -> bool:
    """Pause a subscription all of whose attempts have failed for PAUSE_AFTER (the relay calls
    this after a failed attempt). True when this call paused it."""
    now = now or timezone.now()
    sub = WebhookSubscription.objects.select_related("environment").filter(pk=subscription_id).first()
    if sub is None or sub.state != SubscriptionState.ACTIVE:
        return False
    actor = Actor.system(sub.environment, door=str(Door.TASK))
    decision = policy.require(actor, "webhook.update", sub)
    with transaction.atomic():
        sub = WebhookSubscription.objects.select_for_update().get(pk=subscription_id)
        if sub.state != SubscriptionState.ACTIVE or sub.failing_since is None or now - sub.failing_since < PAUSE_AFTER:
            return False
        hours = int((now - sub.failing_since).total_seconds() // 3600)
        sub.state = SubscriptionState.PAUSED
        sub.paused_reason = (
            f"Paused automatically on {now:%Y-%m-%d %H:%M} UTC: every delivery attempt has failed for {hours} h "
            f"(since {sub.failing_since:%Y-%m-%d %H:%M} UTC). Last error: {last_error}"
        )[:300]
        sub.save(update_fields=["state", "paused_reason"])
        audit.record(
            actor,
            "webhook.update",
            sub,
            decision=decision,
            reasons=[f"Every delivery attempt has failed for {hours} hours."],
            changes={
                "before": {"state": SubscriptionState.ACTIVE},
                "after": {"state": SubscriptionState.PAUSED, "paused_reason": sub.paused_reason},
            },
        )
    return True


# --- dead letters ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterResolution:
    dead_letter: DeadLetter
    detail: str


def _resolve(actor: Actor, dead_letter: DeadLetter, action: str, now: datetime | None) -> DeadLetterResolution:
    decision = policy.require(actor, action, dead_letter)
    now = now or timezone.now()
    kind = dead_letter_kind(dead_letter.kind)
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
        if letter.resolved_at is not None:
            raise DeadLetterResolved(
                f"Dead letter {letter.pk} was {letter.resolution} on {letter.resolved_at:%Y-%m-%d %H:%M} UTC."
            )
        if action == "dead_letter.replay":
            if kind is None:
                raise CannotReplay(f"Dead letters of kind {letter.kind!r} cannot be replayed here.")
            detail = kind.replay(letter, now)
            letter.resolution = "replayed"
        else:
            detail = kind.discard(letter, now) if kind is not None and kind.discard is not None else "Discarded."
            letter.resolution = "discarded"
        letter.resolved_at = now
        letter.resolved_by = cast("User", actor.user) if actor.user is not None and actor.user.pk else None
        letter.save(update_fields=["resolution", "resolved_at", "resolved_by"])
        if action == "dead_letter.replay" and kind is not None and kind.after_commit is not None:
            transaction.on_commit(kind.after_commit, robust=True)
        audit.record(
            actor,
            action,
            letter,
            decision=decision,
            reasons=[detail],
            changes={"after": {"resolution": letter.resolution}, "kind": letter.kind, "reference": letter.reference_id},
        )
    return DeadLetterResolution(letter, detail)


def dead_letter_replay(*, actor: Actor, dead_letter: DeadLetter, now: datetime | None = None) -> DeadLetterResolution:
    """Put the work back in line as a fresh attempt series (a webhook delivery gets all its
    attempts again); if it fails again, it comes back as a new dead letter."""
    return _resolve(actor, dead_letter, "dead_letter.replay", now)


def dead_letter_discard(*, actor: Actor, dead_letter: DeadLetter, now: datetime | None = None) -> DeadLetterResolution:
    """Give the work up for good; the dead letter stays listed as discarded."""
    return _resolve(actor, dead_letter, "dead_letter.discard", now)


# --- the dead letters of webhook deliveries and outbox dispatches ------------------------


def _dead_delivery(letter: DeadLetter) -> WebhookDelivery:
    delivery = (
        WebhookDelivery.objects.select_for_update()
        .filter(pk=letter.payload.get("delivery_id") or letter.reference_id)
        .select_related("subscription")
        .first()
    )
    if delivery is None:
        raise SubscriptionDeleted(
            f"The delivery of dead letter {letter.pk} no longer exists: its subscription was deleted."
        )
    if delivery.state != DeliveryState.DEAD:
        raise DeliveryNotDead(f"The delivery of dead letter {letter.pk} is {delivery.state}, not dead-lettered.")
    return delivery


def delivery_replay(letter: DeadLetter, now: datetime) -> str:
    """A dead webhook delivery back to pending, with all its attempts again."""
    delivery = _dead_delivery(letter)
    delivery.state = DeliveryState.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    delivery.last_error = ""
    delivery.save(update_fields=["state", "attempts", "next_attempt_at", "last_error"])
    event_id = letter.payload.get("event_id", "")
    if delivery.subscription.state != SubscriptionState.ACTIVE:
        return (
            f"Delivery of {event_id} re-queued; its subscription is paused, so it is sent once the subscription "
            "is active again."
        )
    return f"Delivery of {event_id} to {delivery.subscription.url} re-queued with a fresh set of attempts."


def delivery_discard(letter: DeadLetter, now: datetime) -> str:
    updated = WebhookDelivery.objects.filter(
        pk=letter.payload.get("delivery_id") or letter.reference_id, state=DeliveryState.DEAD
    ).update(state=DeliveryState.DISCARDED)
    return "Discarded; the delivery will not be retried." if updated else "Discarded."


def dispatch_replay(letter: DeadLetter, now: datetime) -> str:
    """An outbox event whose fan-out kept failing, undispatched again for the relay."""
    updated = OutboxEvent.objects.filter(pk=letter.reference_id).update(dispatched_at=None, attempts=0, last_error="")
    if not updated:
        raise EventDeleted(f"The outbox event of dead letter {letter.pk} no longer exists.")
    return f"Event {letter.payload.get('event_id', letter.reference_id)} queued for dispatch again."


def _kick_deliveries() -> None:
    from integrations.webhooks import delivery

    delivery.kick_deliveries()


def _kick_relay() -> None:
    from integrations.outbox import relay

    relay.kick_relay()


# Registered in integrations/apps.py (webhooks/dead_letters.py has the registry).
DELIVERY_DEAD_LETTERS = DeadLetterKind(replay=delivery_replay, discard=delivery_discard, after_commit=_kick_deliveries)
DISPATCH_DEAD_LETTERS = DeadLetterKind(replay=dispatch_replay, after_commit=_kick_relay)
