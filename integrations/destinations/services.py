"""Destinations and the work pushed to them.

A destination is a configured downstream tool: `{"name", "adapter", "config",
"credentials" | "credentials_env"}` in one environment. Its credentials are stored
encrypted or named as an environment variable (destinations/credentials.py) and never shown
back. Every change goes through a service here: the policy engine decides, the adapter
validates the config (each problem with a pointer and a hint), one audit event records it.

Sandbox destinations never reach a real vendor: only the adapters marked
`sandbox_allowed` (file, webhook), and only at local targets.

Work for a destination is a DestinationPush (members added/removed, or a send batch):

    pending ──run──> succeeded
       │  └──4xx, bad config──> failed ──> dead letter (replayable)
       └──5xx, timeout, breaker open, 429──> deferred (next_attempt_at) ──run──> …

A push is claimed with a conditional UPDATE that moves `next_attempt_at` a lease ahead,
so concurrent sweepers never run it twice and a killed worker's push comes back when
the lease runs out. Its progress (items delivered per phase) is kept on its payload, so
a retried push resumes after the last delivered batch. Nothing is dropped: a push that
keeps failing for about a day lands in the dead-letter list, from which it is replayed.

A job that delivers to destinations (`destination_job_run`) ends `partially_succeeded`
with one warning per deferred destination saying what failed and what happens next;
when the deferred push is delivered later, that warning is marked resolved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from governance import policy
from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import Environment
from integrations import adapters
from integrations.adapters.base import (
    AdapterError,
    Checkpoint,
    CircuitOpen,
    ConfigProblem,
    ConfigurationError,
    RateLimited,
    ServerFailure,
)
from integrations.destinations import credentials as credentials_store
from integrations.destinations.breakers import OPEN, Breaker, Probe, Snapshot
from integrations.jobs import services as jobs
from integrations.models import DeadLetter, Destination, DestinationPush, Job, JobState, PushState
from integrations.webhooks.dead_letters import DeadLetterKind
from marketerapi.problems import InvalidInput, NotFound

logger = logging.getLogger("marketerapi.destinations")


JOB_KIND = "destination.push"
PUSH_KINDS = ("members", "send")
# How long a claimed push is held by its worker before another may take it over: longer
# than a large push takes (a 32,000-item async upsert polled for minutes).
LEASE = timedelta(minutes=15)
# A push that keeps failing is retried with exponential backoff, capped, then dead-lettered:
# 30 s, 1, 2, 4 … 60 min; 30 attempts span about a day.
RETRY_BASE = 30.0
RETRY_MAX_GAP = 3600.0
MAX_ATTEMPTS = 30
# Member pushes save their progress at most this often (their payload is large); sends
# save after every batch, because a re-sent batch is a message sent twice.
PROGRESS_EVERY = 2.0
DUE_BATCH = 100
# A delivery job still queued after this long lost its task (a broker hiccup): the sweep runs it.
LOST_JOB_AFTER = timedelta(minutes=2)
LAST_ERROR_CHARS = 500

UNSET: Any = object()


# --- validation -------------------------------------------------------------------------


def _problem(pointer: str, code: str, message: str, hint: str) -> dict[str, str]:
    return {"pointer": pointer, "code": code, "message": message, "hint": hint}


def _problems_of(problems: Iterable[ConfigProblem], prefix: str) -> list[dict[str, str]]:
    return [p.as_error(prefix) for p in problems]


def validate(
    *,
    environment: Environment,
    name: str,
    adapter: str,
    config: Any,
    credentials: Any = None,
    credentials_env: str | None = None,
    has_stored_credentials: bool = False,
    exclude_id: int | None = None,
) -> None:
    """Raise InvalidInput listing every problem of a destination's settings at once."""
    errors: list[dict[str, str]] = []
    name = (name or "").strip()
    if not name or len(name) > 100:
        errors.append(_problem("/name", "invalid_name", "A name has 1 to 100 characters.", "Use e.g. braze-eu."))
    elif Destination.objects.filter(environment=environment, name=name).exclude(pk=exclude_id).exists():
        errors.append(
            _problem(
                "/name",
                "name_taken",
                f"{environment.slug} already has a destination named {name!r}.",
                "Choose another name, or change the existing destination (PATCH /api/v1/destinations/{id}).",
            )
        )
    cls = adapters.get(adapter)
    if cls is None:
        errors.append(
            _problem(
                "/adapter",
                "unknown_adapter",
                f"There is no adapter {adapter!r}.",
                f"Use one of: {', '.join(adapters.names())}.",
            )
        )
    elif environment.is_sandbox and not cls.sandbox_allowed:
        errors.append(
            _problem(
                "/adapter",
                "sandbox_adapter_not_allowed",
                f"Sandbox destinations never reach a real vendor, so the {adapter} adapter is not available in "
                f"{environment.slug}.",
                f"In a sandbox use {' or '.join(adapters.sandbox_names())} pointed at a local target (a loopback "
                f"URL or a local directory); create the {adapter} destination in pilot or production.",
            )
        )
    if cls is not None:
        config_problems = cls.validate_config(config)
        errors.extend(_problems_of(config_problems, "/config"))
        if not config_problems and environment.is_sandbox and cls.sandbox_allowed:
            errors.extend(_problems_of(cls.sandbox_problems(cls.resolved(config)), "/config"))
        if credentials is not None and credentials_env:
            errors.append(
                _problem(
                    "/credentials_env",
                    "credentials_twice",
                    "Send either `credentials` or `credentials_env`, not both.",
                    "Keep the one you use: stored (encrypted) credentials, or the name of an environment variable.",
                )
            )
        if credentials is not None:
            errors.extend(_problems_of(cls.validate_credentials(credentials), "/credentials"))
        if credentials_env:
            problem = credentials_store.env_name_problem(credentials_env)
            if problem:
                errors.append(
                    _problem(
                        "/credentials_env",
                        "invalid_credentials_env",
                        problem,
                        f"Name the variable {credentials_store.ENV_PREFIX}<SOMETHING>, set it in the web and worker "
                        "processes, and send that name.",
                    )
                )
        needs = any(cls.credential_keys.values())
        if needs and credentials is None and not credentials_env and not has_stored_credentials:
            errors.append(
                _problem(
                    "/credentials",
                    "credentials_required",
                    f"The {adapter} adapter needs credentials.",
                    cls._credentials_hint() + " Or send `credentials_env` naming an environment variable that holds "
                    "them.",
                )
            )
    if errors:
        raise InvalidInput(
            f"The destination has {len(errors)} problem(s); nothing was saved.",
            code="invalid_destination",
            title="The destination's settings are not valid",
            hint="Fix each entry in `errors` (its `hint` says how) and send the request again.",
            errors=errors,
        )


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


# --- reads ------------------------------------------------------------------------------


def destination_list(*, actor: Actor) -> QuerySet[Destination]:
    policy.require(actor, "destination.view")
    return Destination.objects.filter(environment=actor.environment).select_related("environment", "created_by")


def destination_get(*, actor: Actor, destination_id: int) -> Destination:
    """A destination of the actor's environment; 404 for any other."""
    destination = destination_list(actor=actor).filter(pk=destination_id).first()
    if destination is None:
        raise NotFound(
            f"No destination {destination_id} in {actor.environment.slug}.",
            code="destination_not_found",
            hint="GET /api/v1/destinations/ lists the destinations of your token's environment.",
        )
    return destination


def breaker_of(destination: Destination, clock: Any = None) -> Breaker:
    return Breaker.for_destination(destination, clock)


def destination_status(destination: Destination, *, push_counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Health as the API, the admin and /status show it: breaker, last success, queued work.
    No vendor call; secrets excluded."""
    snap = breaker_of(destination).snapshot()
    counts = push_counts if push_counts is not None else _push_counts([destination.pk]).get(destination.pk, {})
    deferred = counts.get(PushState.DEFERRED, 0)
    if not destination.is_active:
        status = "inactive"
    elif snap.state != "closed" or deferred:
        status = "degraded"
    elif destination.last_failure_at and (
        destination.last_success_at is None or destination.last_failure_at > destination.last_success_at
    ):
        status = "failing"
    elif destination.last_success_at is None:
        status = "unknown"
    else:
        status = "ok"
    next_retry = (
        DestinationPush.objects.filter(destination=destination, state=PushState.DEFERRED)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
        if deferred
        else None
    )
    return {
        "status": status,
        "breaker": snap.as_dict(),
        "last_success_at": destination.last_success_at,
        "last_failure_at": destination.last_failure_at,
        "last_error": destination.last_error,
        "pushes": {
            "pending": counts.get(PushState.PENDING, 0),
            "deferred": deferred,
            "failed": counts.get(PushState.FAILED, 0),
        },
        "next_retry_at": next_retry,
        "explanation": _explain(destination, status, snap, deferred, next_retry),
    }


def _explain(destination: Destination, status: str, snap: Snapshot, deferred: int, next_retry: Any) -> str:
    if status == "inactive":
        return "Switched off: nothing is sent; its pushes wait until it is switched on again."
    if status == "degraded":
        parts = []
        if snap.state != "closed":
            parts.append(
                f"Calls are paused after {snap.failures} consecutive failures (last: {snap.last_error or 'unknown'})"
            )
        if deferred:
            when = f" from {_clock(next_retry)}" if next_retry else ""
            parts.append(f"{deferred} push(es) are queued and will be retried{when}; nothing was lost")
        return "; ".join(parts) + "."
    if status == "failing":
        return f"The last call failed: {destination.last_error or 'see last_error'}."
    if status == "unknown":
        return "Nothing has been sent yet; POST /api/v1/destinations/{id}/test checks the connection."
    return "Working."


def _push_counts(destination_ids: list[int]) -> dict[int, dict[str, int]]:
    rows = (
        DestinationPush.objects.filter(destination_id__in=destination_ids)
        .exclude(state=PushState.SUCCEEDED)
        .values("destination_id", "state")
        .annotate(n=Count("id"))
    )
    out: dict[int, dict[str, int]] = {}
    for row in rows:
        out.setdefault(row["destination_id"], {})[row["state"]] = row["n"]
    return out


def destination_statuses(destinations: Sequence[Destination]) -> dict[int, dict[str, Any]]:
    counts = _push_counts([d.pk for d in destinations])
    return {d.pk: destination_status(d, push_counts=counts.get(d.pk, {})) for d in destinations}


def destination_health(*, actor: Actor, destination: Destination) -> dict[str, Any]:
    policy.require(actor, "destination.view", destination)
    return destination_status(destination)


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
            created_by=actor.user if getattr(actor.user, "pk", None) else None,
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
            _bring_forward(current, now)
        audit.record(
            actor, "destination.update", current, decision=decision, changes={"before": before, "after": after}
        )
    if touched_connection:
        breaker_of(current).reset()
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
        cls = adapters.get(destination.adapter)
        credentials = credentials_store.destination_credentials(destination, cls.primary_credential if cls else None)
        _sandbox_guard(destination)
        adapter = adapters.build(
            destination,
            credentials=credentials,
            breaker=Probe(breaker_of(destination)),
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
        _mirror(destination.pk, ok=ok, at=tested_at, error=message)
        if ok:
            requeued = _bring_forward(destination, tested_at)
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
        ok, message, checks, latency, tested_at, hint, requeued, destination_status(destination)
    )


def destination_breaker_reset(*, actor: Actor, destination: Destination, now: datetime | None = None) -> int:
    """Close the breaker by hand and retry deferred pushes at once; returns how many."""
    decision = policy.require(actor, "destination.update", destination)
    now = now or timezone.now()
    before = breaker_of(destination).snapshot().as_dict()
    breaker_of(destination).reset()
    with transaction.atomic():
        requeued = _bring_forward(destination, now)
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


def _bring_forward(destination: Destination, now: datetime) -> int:
    return DestinationPush.objects.filter(
        destination=destination, state=PushState.DEFERRED, next_attempt_at__gt=now
    ).update(next_attempt_at=now)


def _mirror(destination_id: int, *, ok: bool, at: datetime, error: str = "") -> None:
    """Keep the Destination row's last_success_at / last_failure_at / last_error current
    (UPDATE, not save(): these fields are outside the row's history)."""
    if ok:
        Destination.objects.filter(pk=destination_id).update(last_success_at=at)
    else:
        Destination.objects.filter(pk=destination_id).update(last_failure_at=at, last_error=error[:LAST_ERROR_CHARS])


# --- pushes -----------------------------------------------------------------------------


def push_create(
    *, destination: Destination, kind: str, payload: dict[str, Any], job: Job | None = None
) -> DestinationPush:
    """One unit of work for one destination, in the caller's transaction."""
    if kind not in PUSH_KINDS:
        raise ValueError(f"push kind {kind!r} is not one of {PUSH_KINDS}")
    return DestinationPush.objects.create(destination=destination, job=job, kind=kind, payload=payload)


def members_delivery_start(
    *,
    environment: Environment,
    added: Sequence[Any],
    removed: Sequence[Any],
    destinations: Iterable[Destination] | None = None,
    job: Job | None = None,
    requested_by: Any = None,
    target: Any = None,
    enqueue: bool = True,
) -> Job:
    """Queue a members diff for every active destination of the environment (or those
    given), under a job of its own unless one is passed; the job runs after commit.

    Publish calls this with the diff of the new live version.
    """
    with transaction.atomic():
        if job is None:
            job = jobs.job_create(
                environment=environment,
                kind=JOB_KIND,
                target=target,
                requested_by=requested_by,
                params={"added": len(added), "removed": len(removed)},
            )
        chosen = (
            list(destinations)
            if destinations is not None
            else list(Destination.objects.filter(environment=environment, is_active=True))
        )
        payload = {"added": list(added), "removed": list(removed)}
        for destination in chosen:
            if destination.environment_id != environment.pk:
                raise ValueError("a destination of another environment")
            push_create(destination=destination, kind="members", payload=payload, job=job)
        if enqueue:
            job_id = job.pk
            transaction.on_commit(lambda: enqueue_job(job_id), robust=True)
    return job


@dataclass
class PushOutcome:
    push_id: int
    state: str
    delivered: int = 0
    warnings: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    hint: str = ""
    code: str = ""
    retry_at: datetime | None = None
    dead_letter_id: int | None = None
    snapshot: Snapshot | None = None


def _retry_gap(attempts: int) -> float:
    return min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_MAX_GAP)


def _clock(at: datetime | None) -> str:
    if at is None:
        return "soon"
    local = timezone.localtime(at, timezone.get_fixed_timezone(0))
    today = timezone.localtime(timezone.now(), timezone.get_fixed_timezone(0)).date()
    return f"{local:%H:%M} UTC" if local.date() == today else f"{local:%Y-%m-%d %H:%M} UTC"


def _remaining(push: DestinationPush) -> str:
    """The work still queued, in words: "12,000 added and 300 removed members"."""
    done = (push.payload or {}).get("progress") or {}
    if push.kind == "send":
        recipients = len(((push.payload or {}).get("batch") or {}).get("recipients") or [])
        left = max(recipients - int(done.get("recipients", 0)), 0)
        return f"{left:,} recipient(s)"
    added = max(len(push.payload.get("added") or []) - int(done.get("added", 0)), 0)
    removed = max(len(push.payload.get("removed") or []) - int(done.get("removed", 0)), 0)
    parts = [f"{added:,} added" if added else "", f"{removed:,} removed" if removed else ""]
    text = " and ".join(p for p in parts if p) or "0"
    return f"{text} members"


def _claim(push: DestinationPush, now: datetime) -> bool:
    return bool(
        DestinationPush.objects.filter(
            pk=push.pk,
            state__in=[PushState.PENDING, PushState.DEFERRED],
            attempts=push.attempts,
            next_attempt_at__lte=now,
        ).update(attempts=push.attempts + 1, next_attempt_at=now + LEASE)
    )


def push_run(push_id: int, *, now: datetime | None = None) -> PushOutcome | None:
    """Run one due push now. Returns None when it is not due, not runnable or taken by
    another worker. Network calls happen outside any transaction."""
    fixed = now
    now = now or timezone.now()
    push = (
        DestinationPush.objects.select_related("destination", "destination__environment", "job")
        .filter(pk=push_id, state__in=[PushState.PENDING, PushState.DEFERRED], next_attempt_at__lte=now)
        .first()
    )
    if push is None or not push.destination.is_active:
        return None
    destination = push.destination
    # Services and tests that name `now` run the breaker on the same clock.
    breaker = breaker_of(destination, (lambda: fixed.timestamp()) if fixed is not None else None)
    snap = breaker.snapshot()
    if snap.state == OPEN:
        # Held back without spending an attempt: the breaker decides when to try again.
        return _defer(push, CircuitOpen("open", snapshot=snap), breaker, now, count_attempt=False)
    if not _claim(push, now):
        return None
    push.attempts += 1
    credentials: dict[str, Any] = {}
    progress: dict[str, int] = dict((push.payload or {}).get("progress") or {})
    last_saved = [time.monotonic()]

    def save_progress(done: dict[str, int]) -> None:
        progress.clear()
        progress.update(done)
        if push.kind == "send" or time.monotonic() - last_saved[0] >= PROGRESS_EVERY:
            push.payload = {**push.payload, "progress": dict(progress)}
            DestinationPush.objects.filter(pk=push.pk).update(payload=push.payload)
            last_saved[0] = time.monotonic()

    try:
        cls = adapters.get(destination.adapter)
        credentials = credentials_store.destination_credentials(destination, cls.primary_credential if cls else None)
        _sandbox_guard(destination)
        adapter = adapters.build(destination, credentials=credentials, breaker=breaker, reference=f"push-{push.pk}")
        checkpoint = Checkpoint(progress, on_advance=save_progress)
        with adapter:
            if push.kind == "send":
                result = adapter.send(push.payload.get("batch") or {}, checkpoint)
            else:
                result = adapter.push_members(
                    push.payload.get("added") or [], push.payload.get("removed") or [], checkpoint
                )
    except credentials_store.CredentialsUnavailable as exc:
        push.payload = {**push.payload, "progress": dict(progress)}
        return _fail(push, ConfigurationError(str(exc), hint=exc.hint), now, credentials)
    except (CircuitOpen, ServerFailure, RateLimited) as exc:
        push.payload = {**push.payload, "progress": dict(progress)}
        if push.attempts >= MAX_ATTEMPTS:
            return _fail(push, exc, now, credentials)
        return _defer(push, exc, breaker, now, count_attempt=True, credentials=credentials)
    except AdapterError as exc:
        push.payload = {**push.payload, "progress": dict(progress)}
        return _fail(push, exc, now, credentials)
    except Exception as exc:
        # A bug or an answer no adapter expected: keep the work and try again later, like
        # an outage (it still ends in the dead-letter list if it never goes through).
        logger.exception("push %s to destination %s failed unexpectedly", push.pk, destination.pk)
        push.payload = {**push.payload, "progress": dict(progress)}
        unexpected = ServerFailure(
            f"Pushing to {destination.name} failed unexpectedly ({type(exc).__name__}).",
            hint="The error is in the worker's log; the work is kept and retried.",
        )
        if push.attempts >= MAX_ATTEMPTS:
            return _fail(push, unexpected, now, credentials)
        return _defer(push, unexpected, breaker, now, count_attempt=True, credentials=credentials)
    return _succeed(push, result, now, progress)


def _sandbox_guard(destination: Destination) -> None:
    """Sandbox work never reaches a vendor, even from a row that predates the rule or was
    changed behind the services' back."""
    if not destination.environment.is_sandbox:
        return
    cls = adapters.get(destination.adapter)
    if cls is None or not cls.sandbox_allowed or cls.sandbox_problems(cls.resolved(destination.config)):
        raise ConfigurationError(
            f"{destination.name} is a sandbox destination that does not point at a local target; nothing was sent.",
            hint="In a sandbox use the file adapter or a webhook at 127.0.0.1/localhost (PATCH its config).",
        )


def _defer(
    push: DestinationPush,
    exc: AdapterError,
    breaker: Breaker,
    now: datetime,
    *,
    count_attempt: bool,
    credentials: dict[str, Any] | None = None,
) -> PushOutcome:
    snap = breaker.snapshot()
    if isinstance(exc, RateLimited):
        retry_at = now + timedelta(seconds=exc.retry_after)
    else:
        retry_at = now + timedelta(seconds=_retry_gap(push.attempts)) if count_attempt else now
        if snap.state != "closed" and snap.retry_at is not None:
            retry_at = max(retry_at, snap.retry_at)
    name = push.destination.name
    if isinstance(exc, RateLimited):
        cause = f"{name} is rate limiting us ({credentials_store.redact(exc.message, credentials)})"
    elif snap.failures:
        cause = f"{name} is unavailable ({snap.failures} failures, last: {snap.last_error or 'unknown'})"
    else:
        cause = credentials_store.redact(exc.message, credentials).rstrip(".")
    message = f"{cause}. {_remaining(push)} are queued and will be retried from {_clock(retry_at)}; nothing was lost."
    values: dict[str, Any] = {"state": PushState.DEFERRED, "next_attempt_at": retry_at, "last_error": message[:1000]}
    if count_attempt:
        values["payload"] = push.payload
        DestinationPush.objects.filter(pk=push.pk).update(**values)
    else:
        # Not claimed: only a push that is still due and waiting is moved.
        DestinationPush.objects.filter(
            pk=push.pk, state__in=[PushState.PENDING, PushState.DEFERRED], attempts=push.attempts
        ).update(**values)
    if count_attempt:
        _mirror(push.destination_id, ok=False, at=now, error=cause)
    outcome = PushOutcome(
        push.pk,
        PushState.DEFERRED,
        error=message,
        code=exc.code,
        hint=(
            "Nothing to do: delivery resumes by itself. GET /api/v1/destinations/"
            f"{push.destination_id}/health shows the circuit breaker; once the vendor is back, POST "
            f"/api/v1/destinations/{push.destination_id}/test retries at once."
        ),
        retry_at=retry_at,
        snapshot=snap,
    )
    _after_push(push, outcome, now)
    return outcome


def _fail(push: DestinationPush, exc: AdapterError, now: datetime, credentials: dict[str, Any]) -> PushOutcome:
    detail = credentials_store.redact(exc.message, credentials)
    with transaction.atomic():
        DestinationPush.objects.filter(pk=push.pk).update(
            state=PushState.FAILED, done_at=now, last_error=detail[:1000], payload=push.payload
        )
        letter = DeadLetter.objects.create(
            environment_id=push.destination.environment_id,
            kind="destination_push",
            reference_id=str(push.pk),
            payload={
                "push_id": push.pk,
                "destination_id": push.destination_id,
                "destination": push.destination.name,
                "kind": push.kind,
                "job_id": push.job_id,
                "progress": (push.payload or {}).get("progress") or {},
            },
            attempts=push.attempts,
            last_error=detail[:1000],
        )
        _mirror(push.destination_id, ok=False, at=now, error=detail)
    hint = exc.hint or "Fix the destination, then replay the dead letter."
    outcome = PushOutcome(
        push.pk,
        PushState.FAILED,
        error=f"{detail} {_remaining(push)} were not delivered.",
        code=exc.code,
        hint=f"{hint} Then replay it: POST /api/v1/dead-letters/{letter.pk}/replay.",
        dead_letter_id=letter.pk,
    )
    _after_push(push, outcome, now)
    return outcome


def _succeed(
    push: DestinationPush, result: adapters.DeliveryResult, now: datetime, progress: dict[str, int]
) -> PushOutcome:
    summary = {k: v for k, v in result.as_dict().items() if k != "warnings"}
    payload = {**push.payload, "progress": dict(progress), "result": summary}
    with transaction.atomic():
        DestinationPush.objects.filter(pk=push.pk).update(
            state=PushState.SUCCEEDED, done_at=now, last_error="", payload=payload
        )
        _mirror(push.destination_id, ok=True, at=now)
        # The vendor is back: whatever else waits for it goes now instead of at its backoff.
        waiting = _bring_forward(push.destination, now)
        if waiting:
            transaction.on_commit(kick_due_pushes, robust=True)
    push.payload = payload
    outcome = PushOutcome(push.pk, PushState.SUCCEEDED, delivered=result.delivered, warnings=result.warnings)
    _after_push(push, outcome, now)
    return outcome


def _destination_ref(push: DestinationPush) -> dict[str, Any]:
    d = push.destination
    return {"id": d.pk, "name": d.name, "adapter": d.adapter}


def _after_push(push: DestinationPush, outcome: PushOutcome, now: datetime) -> None:
    """A push of a job that already finished: update what the job says about it."""
    job = push.job
    if job is None or job.state not in jobs.TERMINAL:
        return
    key = str(push.destination_id)

    def change(locked: Job) -> None:
        entry = dict((locked.result.get("destinations") or {}).get(key) or {})
        entry.update(state=outcome.state, updated_at=now.isoformat())
        if outcome.retry_at:
            entry["retry_at"] = outcome.retry_at.isoformat()
        locked.result = {**locked.result, "destinations": {**(locked.result.get("destinations") or {}), key: entry}}
        for warning in locked.warnings:
            if warning.get("push_id") == push.pk and not warning.get("resolved_at"):
                if outcome.state == PushState.SUCCEEDED:
                    warning["resolved_at"] = now.isoformat()
                    warning["resolution"] = f"Delivered at {_clock(now)} after {push.attempts} attempt(s)."
                elif outcome.state == PushState.DEFERRED:
                    warning["retry_at"] = outcome.retry_at.isoformat() if outcome.retry_at else None
                    warning["message"] = outcome.error
                elif outcome.state == PushState.FAILED:
                    warning["resolved_at"] = now.isoformat()
                    warning["resolution"] = "Failed for good; see errors."
        if outcome.state == PushState.FAILED:
            locked.errors = [
                *locked.errors,
                jobs.note(
                    outcome.code,
                    outcome.error,
                    outcome.hint,
                    destination=_destination_ref(push),
                    push_id=push.pk,
                    dead_letter_id=outcome.dead_letter_id,
                ),
            ]

    jobs.job_amend(job.pk, change)


def delivery_jobs_recover(*, now: datetime | None = None) -> int:
    """Finish delivery jobs nobody will finish: queued ones whose task was lost (run them
    now) and running ones whose worker died (their pushes go on through the sweep; the job
    reports where each stands). Returns how many jobs it finished."""
    given = now
    now = now or timezone.now()
    finished = 0
    lost = Job.objects.filter(kind=JOB_KIND, state=JobState.QUEUED, created_at__lt=now - LOST_JOB_AFTER)
    for job_id in lost.values_list("pk", flat=True)[:DUE_BATCH]:
        finished += destination_job_run(job_id, now=given) is not None
    stale = Job.objects.filter(kind=JOB_KIND, state=JobState.RUNNING, heartbeat_at__lt=now - LEASE)
    for job in stale[:DUE_BATCH]:
        pushes = list(job.pushes.select_related("destination").order_by("id"))
        warnings: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for push in pushes:
            more_warnings, more_errors = delivery_notes(push, None)
            warnings += more_warnings
            errors += more_errors
        delivered_any = any(p.state != PushState.FAILED for p in pushes)
        state = JobState.FAILED if errors and not delivered_any else None
        jobs.job_finish(job, warnings=warnings, errors=errors, state=state, now=now)
        finished += 1
    return finished


def pushes_run_due(*, now: datetime | None = None, limit: int = DUE_BATCH, time_budget: float = 50.0) -> dict[str, int]:
    """Run pushes whose time has come (the periodic retry of deferred work), after
    finishing delivery jobs that were lost."""
    started = time.monotonic()
    given = now
    now = now or timezone.now()
    delivery_jobs_recover(now=given)
    counts = {"run": 0, "succeeded": 0, "deferred": 0, "failed": 0}
    due = list(
        DestinationPush.objects.filter(
            state__in=[PushState.PENDING, PushState.DEFERRED],
            next_attempt_at__lte=now,
            destination__is_active=True,
        )
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    for push_id in due:
        if time.monotonic() - started > time_budget:
            break
        outcome = push_run(push_id, now=given)
        if outcome is None:
            continue
        counts["run"] += 1
        counts[outcome.state] = counts.get(outcome.state, 0) + 1
    return counts


# --- jobs that deliver to destinations --------------------------------------------------


def delivery_notes(push: DestinationPush, outcome: PushOutcome | None) -> tuple[list[dict], list[dict]]:
    """The warnings and errors a job shows for one destination's push."""
    ref = _destination_ref(push)
    if outcome is None:
        push.refresh_from_db()
        state = push.state
        if state == PushState.SUCCEEDED:
            return [], []
        if state == PushState.FAILED:
            letter = (
                DeadLetter.objects.filter(kind="destination_push", reference_id=str(push.pk)).order_by("-id").first()
            )
            return [], [
                jobs.note(
                    "destination_failed",
                    f"{push.last_error} {_remaining(push)} were not delivered.",
                    "Fix the destination, then replay its dead letter."
                    + (f" POST /api/v1/dead-letters/{letter.pk}/replay." if letter else ""),
                    destination=ref,
                    push_id=push.pk,
                    dead_letter_id=letter.pk if letter else None,
                )
            ]
        message = push.last_error or f"{_remaining(push)} are queued for {push.destination.name}."
        warning = jobs.note(
            "destination_deferred",
            message,
            "Nothing to do: delivery resumes by itself.",
            destination=ref,
            push_id=push.pk,
            retry_at=push.next_attempt_at.isoformat(),
            resolved_at=None,
        )
        return [warning], []
    if outcome.state == PushState.DEFERRED:
        warning = jobs.note(
            "destination_deferred",
            outcome.error,
            outcome.hint,
            destination=ref,
            push_id=push.pk,
            retry_at=outcome.retry_at.isoformat() if outcome.retry_at else None,
            resolved_at=None,
        )
        return [warning], []
    if outcome.state == PushState.FAILED:
        return [], [
            jobs.note(
                outcome.code,
                outcome.error,
                outcome.hint,
                destination=ref,
                push_id=push.pk,
                dead_letter_id=outcome.dead_letter_id,
            )
        ]
    rejected = [w for w in outcome.warnings if w.get("code") == "row_rejected"]
    others = [w for w in outcome.warnings if w.get("code") != "row_rejected"]
    warnings = []
    if rejected:
        first = rejected[0]["message"]
        warnings.append(
            jobs.note(
                "rows_rejected",
                f"{push.destination.name} did not take {len(rejected):,} row(s); the others were delivered "
                f"(first: {first})",
                "Fix those rows' values (e.g. an invalid email) and publish again; they are listed in `rows`.",
                destination=ref,
                push_id=push.pk,
                rows=rejected[:20],
            )
        )
    for other in others:
        warnings.append(
            jobs.note(other["code"], other["message"], other.get("hint", ""), destination=ref, push_id=push.pk)
        )
    return warnings, []


def destination_job_run(job_id: int, *, now: datetime | None = None) -> Job | None:
    """Claim a delivery job, run each of its pushes once, and finish it:

    - every push delivered → succeeded (rows a vendor refused are warnings);
    - some deferred (a destination down or rate limiting) → partially_succeeded, one warning
      per destination with what failed and when it is retried;
    - some failed for good → partially_succeeded with errors, or failed when nothing was
      delivered anywhere.
    """
    job = jobs.job_claim(job_id, now=now)
    if job is None:
        return None
    pushes = list(job.pushes.select_related("destination", "destination__environment").order_by("id"))
    jobs.job_progress(job, done=0, total=len(pushes), now=now)
    warnings: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    destinations: dict[str, dict[str, Any]] = {}
    delivered_any = False
    for index, push in enumerate(pushes, start=1):
        outcome = push_run(push.pk, now=now) if push.state in (PushState.PENDING, PushState.DEFERRED) else None
        if outcome is None and push.state == PushState.SUCCEEDED:
            delivered_any = True
        more_warnings, more_errors = delivery_notes(push, outcome)
        warnings += more_warnings
        errors += more_errors
        state = outcome.state if outcome else push.state
        delivered_any = delivered_any or state in (PushState.SUCCEEDED, PushState.DEFERRED)
        destinations[str(push.destination_id)] = {
            "name": push.destination.name,
            "state": state,
            "delivered": outcome.delivered if outcome else 0,
            **({"retry_at": outcome.retry_at.isoformat()} if outcome and outcome.retry_at else {}),
        }
        jobs.job_progress(job, done=index, total=len(pushes), now=now)
    final = JobState.FAILED if errors and not delivered_any else None
    return jobs.job_finish(
        job, warnings=warnings, errors=errors, result={"destinations": destinations}, state=final, now=now
    )


# --- kicks and dead letters -------------------------------------------------------------


def enqueue_job(job_id: int) -> None:
    from integrations.destination_tasks import destination_job_task

    try:
        destination_job_task.delay(job_id)
    except Exception:
        logger.warning("could not enqueue delivery job %s; the retry sweep runs its pushes", job_id, exc_info=True)


def kick_due_pushes() -> None:
    from integrations.destination_tasks import retry_deferred_pushes_task

    try:
        retry_deferred_pushes_task.delay()
    except Exception:
        logger.warning("could not kick the push retry; the periodic sweep will run it", exc_info=True)


def _replay_push(letter: DeadLetter, now: datetime) -> str:
    updated = DestinationPush.objects.filter(
        pk=letter.payload.get("push_id") or letter.reference_id, state=PushState.FAILED
    ).update(state=PushState.PENDING, attempts=0, next_attempt_at=now, last_error="", done_at=None)
    if not updated:
        from marketerapi.problems import Conflict

        raise Conflict(
            f"The push of dead letter {letter.pk} no longer exists or is not failed.",
            code="push_not_failed",
            hint="Discard the dead letter; the push is gone or already being handled.",
        )
    return (
        f"Push {letter.reference_id} to {letter.payload.get('destination', 'its destination')} re-queued; it resumes "
        "after the last delivered batch."
    )


# Registered in integrations/apps.py (webhooks/dead_letters.py has the registry).
PUSH_DEAD_LETTERS = DeadLetterKind(replay=_replay_push, after_commit=kick_due_pushes)

__all__ = [
    "JOB_KIND",
    "destination_breaker_reset",
    "destination_create",
    "destination_get",
    "destination_health",
    "destination_job_run",
    "destination_list",
    "destination_test",
    "destination_update",
    "members_delivery_start",
    "push_create",
    "push_run",
    "pushes_run_due",
]
