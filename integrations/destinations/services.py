"""Destinations: the services that change them and queue work for them.

A destination is a configured downstream tool: `{"name", "adapter", "config",
"credentials" | "credentials_env"}` in one environment. Its credentials are stored
encrypted or named as an environment variable (destinations/credentials.py) and never
shown back. Every change goes through a service here: the policy engine decides, the
adapter validates the config (destinations/validation.py: each problem with a pointer
and a hint), one audit event records it.

Sandbox destinations never reach a real vendor: only the adapters marked
`sandbox_allowed` (file, webhook), and only at local targets.

The work for a destination is a DestinationPush (members added/removed, or a send
batch), created with `push_create` and run by destinations/runner.py; reads are in
selectors.py. The bookkeeping the runner writes through here (`destination_record_call`,
`pushes_bring_forward`, `push_replay`) takes no actor: it records what happened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from django.utils import timezone

from governance import policy
from governance.actors import Actor
from governance.audit import trail as audit
from integrations import adapters
from integrations.adapters.base import AdapterError
from integrations.destinations import credentials as credentials_store
from integrations.destinations import selectors
from integrations.destinations.breakers import Probe
from integrations.destinations.errors import PushNotFailed
from integrations.destinations.validation import target_guard, validate
from integrations.models import DeadLetter, Destination, DestinationPush, Job, PushState
from integrations.webhooks.dead_letters import DeadLetterKind

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger("marketerapi.destinations")

PUSH_KINDS = ("members", "send")
LAST_ERROR_CHARS = 500

UNSET: Any = object()


def _summary(destination: Destination) -> dict[str, Any]:
    """What the audit trail records: never credential values."""
    return {
        "name": destination.name,
        "adapter": destination.adapter,
        "config": destination.config,
        "credentials": credentials_store.credentials_label(destination),
        "credentials_env": destination.credentials_env or None,
        "is_active": destination.is_active,
    }


# --- services ---------------------------------------------------------------------------


def destination_create(
    *,
    actor: Actor,
    name: str,
    adapter: str,
    config: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    credentials_env: str | None = None,
    is_active: bool = True,
) -> Destination:
    """Create a destination in the actor's environment; credentials are encrypted or referenced."""
    decision = policy.require(actor, "destination.create")
    config = {} if config is None else config
    validate(
        environment=actor.environment,
        name=name,
        adapter=adapter,
        config=config,
        credentials=credentials,
        credentials_env=credentials_env,
    )
    with transaction.atomic():
        destination = Destination.objects.create(
            environment=actor.environment,
            name=name.strip(),
            adapter=adapter,
            config=config,
            credentials_encrypted=credentials_store.encrypt_credentials(credentials) if credentials else "",
            credentials_env=credentials_env or "",
            is_active=is_active,
            # Actor.user is typed AbstractBaseUser; the user model is auth.User.
            created_by=cast("User", actor.user) if getattr(actor.user, "pk", None) else None,
        )
        audit.record(
            actor, "destination.create", destination, decision=decision, changes={"after": _summary(destination)}
        )
    return destination


def destination_update(
    *,
    actor: Actor,
    destination: Destination,
    name: str = UNSET,
    config: dict[str, Any] | None = UNSET,
    credentials: dict[str, Any] | None = UNSET,
    credentials_env: str | None = UNSET,
    is_active: bool = UNSET,
    now: datetime | None = None,
) -> Destination:
    """Change a destination; arguments left out stay as they are.

    `config` is merged into the current one (a key set to null is removed). New
    `credentials` replace the stored ones and drop `credentials_env`, and the other way
    round; `credentials=None` removes stored credentials. A change of config or
    credentials resets the breaker and retries deferred pushes at once: the operator fixed
    something.
    """
    decision = policy.require(actor, "destination.update", destination)
    now = now or timezone.now()
    with transaction.atomic():
        current = Destination.objects.select_for_update().get(pk=destination.pk)
        before = _summary(current)
        new_name = current.name if name is UNSET else (name or "")
        new_config = dict(current.config or {})
        if config is not UNSET:
            if config is not None and not isinstance(config, dict):
                new_config = config  # reported by validate()
            else:
                for key, value in (config or {}).items():
                    if value is None:
                        new_config.pop(key, None)
                    else:
                        new_config[key] = value
        stored = current.credentials_encrypted
        env_name = current.credentials_env
        sent_credentials = None
        sent_env = None
        if credentials is not UNSET:
            sent_credentials = credentials
            stored, env_name = "", ""
        if credentials_env is not UNSET:
            sent_env = credentials_env or None
            if credentials_env:
                stored, env_name = "", credentials_env
            elif credentials is UNSET:
                env_name = ""
        validate(
            environment=current.environment,
            name=new_name,
            adapter=current.adapter,
            config=new_config,
            credentials=sent_credentials,
            credentials_env=sent_env,
            has_stored_credentials=bool(stored or env_name),
            exclude_id=current.pk,
        )
        current.name = new_name.strip()
        current.config = new_config
        current.credentials_encrypted = (
            credentials_store.encrypt_credentials(sent_credentials) if sent_credentials else stored
        )
        current.credentials_env = env_name
        if is_active is not UNSET:
            current.is_active = bool(is_active)
        current.save(update_fields=["name", "config", "credentials_encrypted", "credentials_env", "is_active"])
        after = _summary(current)
        touched_connection = config is not UNSET or credentials is not UNSET or credentials_env is not UNSET
        if credentials is not UNSET or credentials_env is not UNSET:
            after["credentials_changed"] = True
        if touched_connection or (is_active is not UNSET and current.is_active):
            pushes_bring_forward(current, now)
        audit.record(
            actor, "destination.update", current, decision=decision, changes={"before": before, "after": after}
        )
    if touched_connection:
        selectors.breaker_of(current).reset()
    if touched_connection or (is_active is not UNSET and current.is_active):
        transaction.on_commit(kick_due_pushes, robust=True)
    return current


@dataclass
class ConnectionTestOutcome:
    ok: bool
    message: str
    checks: list[dict[str, Any]]
    latency_ms: int
    tested_at: datetime
    hint: str = ""
    requeued: int = 0
    status: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "result": "passed" if self.ok else "failed",
            "message": self.message,
            "hint": self.hint,
            "checks": self.checks,
            "latency_ms": self.latency_ms,
            "tested_at": self.tested_at,
            "requeued_pushes": self.requeued,
            "health": self.status,
        }


def destination_test(*, actor: Actor, destination: Destination, now: datetime | None = None) -> ConnectionTestOutcome:
    """Run the adapter's health check now (a dry call: nothing is changed at the vendor)
    and record the result. Probes even while the breaker is open; a pass closes the
    breaker and retries the destination's deferred pushes at once."""
    decision = policy.require(actor, "destination.test", destination)
    credentials: dict[str, Any] = {}
    hint = ""
    try:
        # Where it points first: a refused target is refused whatever the credentials.
        target_guard(destination)
        cls = adapters.get(destination.adapter)
        credentials = credentials_store.destination_credentials(destination, cls.primary_credential if cls else None)
        adapter = adapters.build(
            destination,
            credentials=credentials,
            breaker=Probe(selectors.breaker_of(destination)),
            reference="test",
            probing=True,
        )
        with adapter:
            health = adapter.health()
        ok, message, checks, latency = health.ok, health.message, health.checks, health.latency_ms
    except credentials_store.CredentialsUnavailable as exc:
        ok, message, checks, latency, hint = False, str(exc), [], 0, exc.hint
    except AdapterError as exc:
        ok, message, checks, latency, hint = False, exc.message, [], 0, exc.hint
    message = credentials_store.redact(message, credentials)
    checks = [{**c, "message": credentials_store.redact(str(c.get("message", "")), credentials)} for c in checks]
    if not ok and not hint:
        hint = "Fix what `message` names (config, credentials or the vendor side), then test again."
    tested_at = now or timezone.now()
    requeued = 0
    with transaction.atomic():
        destination_record_call(destination.pk, ok=ok, at=tested_at, error=message)
        if ok:
            requeued = pushes_bring_forward(destination, tested_at)
        audit.record(
            actor,
            "destination.test",
            destination,
            decision=decision,
            changes={"result": "passed" if ok else "failed", "message": message[:300], "latency_ms": latency},
        )
        if requeued:
            transaction.on_commit(kick_due_pushes, robust=True)
    destination.refresh_from_db()
    return ConnectionTestOutcome(
        ok, message, checks, latency, tested_at, hint, requeued, selectors.destination_status(destination)
    )


def destination_breaker_reset(*, actor: Actor, destination: Destination, now: datetime | None = None) -> int:
    """Close the breaker by hand and retry deferred pushes at once; returns how many."""
    decision = policy.require(actor, "destination.update", destination)
    now = now or timezone.now()
    before = selectors.breaker_of(destination).snapshot().as_dict()
    selectors.breaker_of(destination).reset()
    with transaction.atomic():
        requeued = pushes_bring_forward(destination, now)
        audit.record(
            actor,
            "destination.breaker_reset",
            destination,
            decision=decision,
            changes={
                "before": {"breaker": before["state"], "failures": before["consecutive_failures"]},
                "requeued_pushes": requeued,
            },
        )
        transaction.on_commit(kick_due_pushes, robust=True)
    return requeued


def push_retry_now(*, actor: Actor, push: DestinationPush, now: datetime | None = None) -> bool:
    """Make one pending or deferred push due now (the admin's "retry now")."""
    decision = policy.require(actor, "destination.update", push.destination)
    now = now or timezone.now()
    with transaction.atomic():
        moved = DestinationPush.objects.filter(pk=push.pk, state__in=[PushState.PENDING, PushState.DEFERRED]).update(
            next_attempt_at=now
        )
        audit.record(actor, "destination.push_retry", push.destination, decision=decision, changes={"push_id": push.pk})
        if moved:
            transaction.on_commit(kick_due_pushes, robust=True)
    return bool(moved)


# --- pushes and their bookkeeping --------------------------------------------------------


def push_create(
    *, destination: Destination, kind: str, payload: dict[str, Any], job: Job | None = None
) -> DestinationPush:
    """One unit of work for one destination, in the caller's transaction."""
    if kind not in PUSH_KINDS:
        raise ValueError(f"push kind {kind!r} is not one of {PUSH_KINDS}")
    return DestinationPush.objects.create(destination=destination, job=job, kind=kind, payload=payload)


def destination_record_call(destination_id: int, *, ok: bool, at: datetime, error: str = "") -> None:
    """Keep the Destination row's last_success_at / last_failure_at / last_error current
    after a call to its vendor (UPDATE, not save(): these fields are bookkeeping outside the
    row's history, so no audit event)."""
    if ok:
        Destination.objects.filter(pk=destination_id).update(last_success_at=at)
    else:
        Destination.objects.filter(pk=destination_id).update(last_failure_at=at, last_error=error[:LAST_ERROR_CHARS])


def pushes_bring_forward(destination: Destination, now: datetime) -> int:
    """Make the destination's deferred pushes due now (the vendor is back, or was fixed);
    returns how many."""
    return DestinationPush.objects.filter(
        destination=destination, state=PushState.DEFERRED, next_attempt_at__gt=now
    ).update(next_attempt_at=now)


def enqueue_job(job_id: int) -> None:
    from integrations.tasks import destination_job_task

    try:
        destination_job_task.delay(job_id)
    except Exception:
        logger.warning("could not enqueue delivery job %s; the retry sweep runs its pushes", job_id, exc_info=True)


def kick_due_pushes() -> None:
    from integrations.tasks import retry_deferred_pushes_task

    try:
        retry_deferred_pushes_task.delay()
    except Exception:
        logger.warning("could not kick the push retry; the periodic sweep will run it", exc_info=True)


def push_replay(letter: DeadLetter, now: datetime) -> str:
    """A failed push back in line (its dead letter is replayed): it resumes after the last
    delivered batch."""
    updated = DestinationPush.objects.filter(
        pk=letter.payload.get("push_id") or letter.reference_id, state=PushState.FAILED
    ).update(state=PushState.PENDING, attempts=0, next_attempt_at=now, last_error="", done_at=None)
    if not updated:
        raise PushNotFailed(f"The push of dead letter {letter.pk} no longer exists or is not failed.")
    return (
        f"Push {letter.reference_id} to {letter.payload.get('destination', 'its destination')} re-queued; it resumes "
        "after the last delivered batch."
    )


# Registered in integrations/apps.py (webhooks/dead_letters.py has the registry).
PUSH_DEAD_LETTERS = DeadLetterKind(replay=push_replay, after_commit=kick_due_pushes)
