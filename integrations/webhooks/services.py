"""Webhook subscriptions and dead letters: the services that change them, the reads that
scope them, and the signing of what is sent.

- A subscription belongs to one environment and names the domain event types it wants
  (`governance.outbox.EVENT_TYPES`). Its signing secret is generated when none is sent,
  returned once, and stored encrypted with a key derived from SECRET_KEY (Fernet; keys in
  SECRET_KEY_FALLBACKS still decrypt, so SECRET_KEY can be rotated).
- Every request carries `Marketerapi-Signature: t=<unix>,v1=<hex>`, the HMAC-SHA256 of
  `"<t>.<body>"` with the secret, and `Marketerapi-Event-Id` (`evt_…`) to deduplicate by.
- Services ask `governance.policy.require` before their transaction, make the change,
  and write one audit event as the transaction's last write. The sending machinery lives
  in integrations/outbox/relay.py and calls `webhook_pause_failing` from here.
- Dead letters are generic (webhook deliveries, outbox dispatches, destination pushes):
  each kind registers how it is replayed and discarded (`register_dead_letter_kind`).

docs/webhooks.md is the integrator's side of this contract.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from governance import policy
from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import Door, Environment, OutboxEvent
from governance.outbox import EVENT_TYPES
from integrations.models import DeadLetter, DeliveryState, SubscriptionState, WebhookDelivery, WebhookSubscription
from marketerapi.problems import Conflict, InvalidInput, NotFound

# --- the delivery contract (docs/webhooks.md has the table) -------------------------

SIGNATURE_HEADER = "Marketerapi-Signature"
EVENT_ID_HEADER = "Marketerapi-Event-Id"
EVENT_TYPE_HEADER = "Marketerapi-Event-Type"
ATTEMPT_HEADER = "Marketerapi-Delivery-Attempt"
SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
MIN_SECRET_LENGTH = 24
MAX_SECRET_LENGTH = 200
# A subscription whose every attempt has failed for this long is paused (its receiver is
# gone or broken; retrying for ever only fills the dead-letter list).
PAUSE_AFTER = timedelta(hours=24)


# --- secrets ----------------------------------------------------------------------


def _derive_key(secret_key: str) -> bytes:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"marketerapi.webhooks.secret")
    return base64.urlsafe_b64encode(kdf.derive(secret_key.encode()))


@lru_cache(maxsize=4)
def _fernet(secret_key: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_derive_key(key)) for key in (secret_key, *fallbacks)])


def _cipher() -> MultiFernet:
    return _fernet(settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ()))


def encrypt_secret(secret: str) -> str:
    return _cipher().encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    """The signing secret; raises SecretUnreadable when SECRET_KEY changed without a fallback."""
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable() from None


class SecretUnreadable(RuntimeError):
    """The stored secret was encrypted under a SECRET_KEY that is neither current nor a fallback."""

    def __str__(self) -> str:
        return (
            "The signing secret cannot be decrypted: SECRET_KEY changed and the old key is not in "
            "SECRET_KEY_FALLBACKS. Rotate the subscription's secret (PATCH rotate_secret)."
        )


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


# --- signing ----------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>.<body>"` with `secret`."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(header: str, body: bytes, secret: str, *, tolerance: int = 300, now: float | None = None) -> bool:
    """The receiver's check (docs/webhooks.md has the same in Python and Node)."""
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = timezone.now().timestamp() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# --- input checks (shared by the API and the admin) ---------------------------------


def _invalid(pointer: str, code: str, message: str, hint: str, **extra: Any) -> InvalidInput:
    return InvalidInput(
        message,
        code=code,
        hint=hint,
        errors=[{"pointer": pointer, "code": code, "message": message, "hint": hint}],
        **extra,
    )


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _host_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    ip = _host_ip(host)
    return (ip is not None and ip.is_loopback) or host.lower() in _LOOPBACK_NAMES


def validate_url(url: str, environment: Environment) -> str:
    """An absolute http(s) URL we are willing to POST events to from `environment`.

    - https everywhere; plain http only in a sandbox (synthetic data) or to a loopback
      address (a receiver on the same machine), since outside a sandbox events carry
      real customers' data.
    - No user:password@ (it would be stored and shown in clear; the signature proves
      the sender), and no link-local, multicast or unspecified addresses (cloud metadata
      endpoints live at 169.254.169.254).
    """
    url = (url or "").strip()
    shape_hint = "Send an absolute URL such as https://hooks.example.com/marketerapi."
    if len(url) > 500:
        raise _invalid("/url", "invalid_url", "The URL is longer than 500 characters.", "Use a shorter URL.")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except DjangoValidationError:
        raise _invalid("/url", "invalid_url", f"{url!r} is not an absolute http(s) URL.", shape_hint) from None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.username or parts.password:
        raise _invalid(
            "/url",
            "url_has_credentials",
            "The URL carries a user name or password.",
            "Remove user:password@ from the URL: check the Marketerapi-Signature header instead (docs/webhooks.md).",
        )
    ip = _host_ip(host)
    if ip is not None and (ip.is_link_local or ip.is_multicast or ip.is_unspecified):
        raise _invalid(
            "/url",
            "url_not_allowed",
            f"Webhooks are not sent to {host} (link-local, multicast or unspecified address).",
            "Use the public or loopback address of your receiver.",
        )
    if parts.scheme == "http" and not environment.is_sandbox and not _is_loopback(host):
        raise _invalid(
            "/url",
            "https_required",
            f"Outside a sandbox webhooks are sent over https only; {environment.slug} holds real data.",
            "Use an https:// URL; plain http is accepted in a sandbox, or to 127.0.0.1/localhost for a local receiver.",
        )
    return url


def validate_event_types(event_types: Iterable[str] | None) -> list[str]:
    allowed = sorted(EVENT_TYPES)
    types = list(dict.fromkeys(event_types or []))
    if not types:
        raise _invalid(
            "/event_types",
            "no_event_types",
            "A subscription needs at least one event type.",
            f"Choose from: {', '.join(allowed)}.",
            allowed_event_types=allowed,
        )
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        hint = f"Use only these event types: {', '.join(allowed)}."
        raise InvalidInput(
            f"Unknown event type(s): {', '.join(map(repr, unknown))}.",
            code="unknown_event_type",
            hint=hint,
            errors=[
                {
                    "pointer": f"/event_types/{types.index(t)}",
                    "code": "unknown_event_type",
                    "message": f"{t!r} is not an event type.",
                    "hint": hint,
                }
                for t in unknown
            ],
            allowed_event_types=allowed,
        )
    return types


def validate_secret(secret: str) -> str:
    if not (MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH) or not secret.isprintable() or " " in secret:
        raise _invalid(
            "/secret",
            "weak_secret",
            f"A signing secret has {MIN_SECRET_LENGTH}–{MAX_SECRET_LENGTH} printable characters without spaces.",
            "Leave `secret` out to have a strong one generated (shown once), or send a longer random one.",
        )
    return secret


# --- reads --------------------------------------------------------------------------


def webhook_list(*, actor: Actor) -> QuerySet[WebhookSubscription]:
    """The subscriptions of the actor's environment, newest first."""
    policy.require(actor, "webhook.view")
    return WebhookSubscription.objects.filter(environment=actor.environment).select_related("environment", "created_by")


def webhook_get(*, actor: Actor, webhook_id: int) -> WebhookSubscription:
    try:
        return webhook_list(actor=actor).get(pk=webhook_id)
    except WebhookSubscription.DoesNotExist:
        raise NotFound(
            f"No webhook subscription {webhook_id} in {actor.environment.slug}.",
            code="webhook_not_found",
            hint="GET /api/v1/webhooks/ lists the subscriptions of your token's environment.",
        ) from None


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
        raise NotFound(
            f"No dead letter {dead_letter_id} in {actor.environment.slug}.",
            code="dead_letter_not_found",
            hint="GET /api/v1/dead-letters/ lists the dead letters of your token's environment.",
        ) from None


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
            created_by=actor.user,
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
        raise _invalid(
            "/rotate_secret",
            "conflicting_fields",
            "Send either `secret` or `rotate_secret`, not both.",
            "Send `secret` to set one you chose, or `rotate_secret: true` to have one generated.",
        )
    if state is not None and state not in SubscriptionState.values:
        raise _invalid(
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
            _kick_deliveries_on_commit()
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
class DeadLetterKind:
    """How one kind of work is put back in line (replay) or given up for good (discard).

    Both run inside the service's transaction with the dead letter locked, return a
    sentence for the caller, and raise Conflict when the work can no longer be replayed.
    `after_commit` runs once the transaction commits (e.g. kick a worker).
    """

    replay: Callable[[DeadLetter, datetime], str]
    discard: Callable[[DeadLetter, datetime], str] | None = None
    after_commit: Callable[[], None] | None = None


DEAD_LETTER_KINDS: dict[str, DeadLetterKind] = {}


def register_dead_letter_kind(kind: str, handler: DeadLetterKind) -> None:
    """Other work (destination pushes) registers its own replay and discard here."""
    DEAD_LETTER_KINDS[kind] = handler


@dataclass(frozen=True)
class DeadLetterResolution:
    dead_letter: DeadLetter
    detail: str


class DeadLetterResolved(Conflict):
    code = "dead_letter_resolved"
    title = "This dead letter was already replayed or discarded"
    hint = "Nothing to do; if it failed again, it is listed as a new dead letter."


def _resolve(actor: Actor, dead_letter: DeadLetter, action: str, now: datetime | None) -> DeadLetterResolution:
    decision = policy.require(actor, action, dead_letter)
    now = now or timezone.now()
    kind = DEAD_LETTER_KINDS.get(dead_letter.kind)
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
        if letter.resolved_at is not None:
            raise DeadLetterResolved(
                f"Dead letter {letter.pk} was {letter.resolution} on {letter.resolved_at:%Y-%m-%d %H:%M} UTC."
            )
        if action == "dead_letter.replay":
            if kind is None:
                raise Conflict(
                    f"Dead letters of kind {letter.kind!r} cannot be replayed here.",
                    code="cannot_replay",
                    hint="Discard it, and redo the work by hand.",
                )
            detail = kind.replay(letter, now)
            letter.resolution = "replayed"
        else:
            detail = kind.discard(letter, now) if kind is not None and kind.discard is not None else "Discarded."
            letter.resolution = "discarded"
        letter.resolved_at = now
        letter.resolved_by = actor.user if actor.user is not None and actor.user.pk else None
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


def _dead_delivery(letter: DeadLetter) -> WebhookDelivery:
    delivery = (
        WebhookDelivery.objects.select_for_update()
        .filter(pk=letter.payload.get("delivery_id") or letter.reference_id)
        .select_related("subscription")
        .first()
    )
    if delivery is None:
        raise Conflict(
            f"The delivery of dead letter {letter.pk} no longer exists: its subscription was deleted.",
            code="subscription_deleted",
            hint="Discard the dead letter; to receive such events again, create a subscription.",
        )
    if delivery.state != DeliveryState.DEAD:
        raise Conflict(
            f"The delivery of dead letter {letter.pk} is {delivery.state}, not dead-lettered.",
            code="delivery_not_dead",
            hint="Discard the dead letter; the delivery is already being handled.",
        )
    return delivery


def _replay_webhook_delivery(letter: DeadLetter, now: datetime) -> str:
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


def _discard_webhook_delivery(letter: DeadLetter, now: datetime) -> str:
    updated = WebhookDelivery.objects.filter(
        pk=letter.payload.get("delivery_id") or letter.reference_id, state=DeliveryState.DEAD
    ).update(state=DeliveryState.DISCARDED)
    return "Discarded; the delivery will not be retried." if updated else "Discarded."


def _replay_outbox_dispatch(letter: DeadLetter, now: datetime) -> str:
    updated = OutboxEvent.objects.filter(pk=letter.reference_id).update(dispatched_at=None, attempts=0, last_error="")
    if not updated:
        raise Conflict(
            f"The outbox event of dead letter {letter.pk} no longer exists.",
            code="event_deleted",
            hint="Discard the dead letter.",
        )
    return f"Event {letter.payload.get('event_id', letter.reference_id)} queued for dispatch again."


def _kick_deliveries_on_commit() -> None:
    from integrations.outbox import relay

    transaction.on_commit(relay.kick_deliveries, robust=True)


def _kick_deliveries() -> None:
    from integrations.outbox import relay

    relay.kick_deliveries()


def _kick_relay() -> None:
    from integrations.outbox import relay

    relay.kick_relay()


register_dead_letter_kind(
    "webhook_delivery",
    DeadLetterKind(replay=_replay_webhook_delivery, discard=_discard_webhook_delivery, after_commit=_kick_deliveries),
)
register_dead_letter_kind("outbox_dispatch", DeadLetterKind(replay=_replay_outbox_dispatch, after_commit=_kick_relay))
