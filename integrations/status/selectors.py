"""`GET /status`: is the service healthy, and if not, what is wrong.

Reports the database, the broker ("in-process (no broker)" when Celery runs eagerly),
the shared cache, the Celery workers (by heartbeat, status/heartbeats.py) and every
destination of the caller's environment with its breaker state and last success.
Readable by every role; nothing secret is in it (no URLs with passwords, no config, no
credentials).

It answers while Redis is down — that is what it is for: callers are then authenticated
from the database (integrations/api/status.py), the cache check says `down` with a hint,
and the overall status is `degraded` (`down` when the broker is that Redis too).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection

from governance import policy
from governance.actors import Actor
from integrations.destinations import selectors as destination_selectors
from integrations.models import Destination
from integrations.status import heartbeats


def system_status(*, actor: Actor) -> dict[str, Any]:
    """The status page's body."""
    policy.require(actor, "status.view")
    database = database_check()
    broker = broker_check()
    shared_cache = cache_check()
    workers = workers_check()
    destinations = destinations_check(actor) if database["status"] == "ok" else []
    if database["status"] != "ok" or broker["status"] != "ok":
        overall = "down"
    elif (
        workers["status"] != "ok"
        or shared_cache["status"] != "ok"
        or any(d["status"] in ("degraded", "failing") for d in destinations)
    ):
        overall = "degraded"
    else:
        overall = "ok"
    return {
        "status": overall,
        "checked_at": datetime.now(UTC),
        "environment": actor.environment.slug,
        "database": database,
        "broker": broker,
        "cache": shared_cache,
        "workers": workers,
        "destinations": destinations,
    }


# --- the checks ------------------------------------------------------------------------


def database_check() -> dict[str, Any]:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"status": "down", "vendor": connection.vendor, "detail": f"{type(exc).__name__}"}
    return {"status": "ok", "vendor": connection.vendor, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def _public_url(url: str) -> str:
    """scheme://host:port/db, never user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def broker_check() -> dict[str, Any]:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"status": "ok", "kind": "in-process (no broker)"}
    url = settings.CELERY_BROKER_URL
    started = time.monotonic()
    try:
        from kombu import Connection

        with Connection(url, connect_timeout=1.5, transport_options={"socket_timeout": 1.5}) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception as exc:
        return {"status": "down", "kind": _public_url(url), "detail": f"Not reachable ({type(exc).__name__})."}
    return {"status": "ok", "kind": _public_url(url), "latency_ms": round((time.monotonic() - started) * 1000, 1)}


REDIS_DOWN_HINT = (
    "Redis (REDIS_URL) is not answering: start it, or check REDIS_URL and the network between the web "
    "processes and Redis. Until it answers, API calls other than GET /status answer 503 with Retry-After; "
    "rate limits count in each process and circuit breakers keep per-process state; queued jobs wait and "
    "nothing is lost (docs/operations.md)."
)


def cache_check() -> dict[str, Any]:
    client = None
    try:
        client = heartbeats.redis()
        if client is None:
            return {"status": "ok", "kind": "in-process", "detail": "Limits and breakers are per process."}
        client.ping()
    except Exception as exc:
        return {
            "status": "down",
            "kind": "redis",
            "detail": f"Not reachable ({type(exc).__name__}).",
            "hint": REDIS_DOWN_HINT,
        }
    return {"status": "ok", "kind": _public_url(settings.REDIS_URL)}


def workers_check(now: float | None = None) -> dict[str, Any]:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {
            "status": "ok",
            "mode": "in-process",
            "detail": "No broker: jobs run in the web process right after their transaction commits.",
            "alive": 0,
            "workers": [],
        }
    at = time.time() if now is None else now
    try:
        beats = heartbeats.beats()
    except Exception as exc:
        return {
            "status": "unknown",
            "mode": "celery",
            "detail": f"Heartbeats unreadable ({type(exc).__name__}).",
            "hint": "Worker heartbeats live in Redis: they are known again once Redis answers (see `cache`).",
            "alive": 0,
            "workers": [],
        }
    listed = []
    for name, seen in sorted(beats.items()):
        age = at - seen
        if age > heartbeats.FORGET_AFTER:
            continue
        listed.append({"name": name, "last_seen": _iso(seen), "alive": age <= heartbeats.HEARTBEAT_TTL})
    alive = sum(1 for w in listed if w["alive"])
    return {
        "status": "ok" if alive else "down",
        "mode": "celery",
        "detail": f"{alive} worker(s) sent a heartbeat in the last {heartbeats.HEARTBEAT_TTL:.0f} s."
        if alive
        else "No worker has sent a heartbeat recently: queued jobs are not being run. Start `celery -A marketerapi "
        "worker` (and `beat`).",
        "alive": alive,
        "workers": listed,
    }


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, tz=UTC).isoformat().replace("+00:00", "Z")


def destinations_check(actor: Actor) -> list[dict[str, Any]]:
    rows = list(Destination.objects.filter(environment=actor.environment).order_by("name"))
    statuses = destination_selectors.destination_statuses(rows)
    out = []
    for destination in rows:
        status = statuses[destination.pk]
        breaker = status["breaker"]
        out.append(
            {
                "id": destination.pk,
                "name": destination.name,
                "adapter": destination.adapter,
                "status": status["status"],
                "breaker": {
                    "state": breaker["state"],
                    "consecutive_failures": breaker["consecutive_failures"],
                    "retry_at": breaker["retry_at"],
                },
                "last_success_at": destination.last_success_at,
                "last_failure_at": destination.last_failure_at,
                "deferred_pushes": status["pushes"]["deferred"],
                "next_retry_at": status["next_retry_at"],
                "explanation": status["explanation"],
            }
        )
    return out
