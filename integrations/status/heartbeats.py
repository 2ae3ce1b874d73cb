"""Worker heartbeats: how /status knows the Celery workers.

Each worker writes `hostname → epoch seconds` when it starts (worker_ready), every
HEARTBEAT_SECONDS from a thread of its own, and when the periodic
`integrations.worker_heartbeat` task runs on it; it removes itself on shutdown. A worker
not heard of for HEARTBEAT_TTL is reported missing (status/selectors.py). The heartbeats
live in Redis (a hash) when REDIS_URL is set, else in the process's cache (which, without
a broker, has no workers anyway).

`connect_worker_signals()` hooks the worker's start and shutdown; integrations/apps.py
calls it in ready(), so every worker process beats whatever it imported.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("marketerapi.status")

HEARTBEAT_SECONDS: float = settings.WORKER_HEARTBEAT_SECONDS
HEARTBEAT_TTL = 60.0
# Workers silent for this long are forgotten (not listed as missing any more).
FORGET_AFTER = 3600.0
WORKERS_KEY = "marketerapi:workers"


def redis() -> Any:
    """The Redis client of REDIS_URL (shared with the circuit breakers), or None."""
    from integrations.destinations.breakers import redis_client

    return redis_client()


def worker_beat(hostname: str, now: float | None = None) -> None:
    """Record that the worker `hostname` is alive."""
    at = time.time() if now is None else now
    try:
        client = redis()
        if client is not None:
            client.hset(WORKERS_KEY, hostname, repr(at))
            return
    except Exception:
        logger.warning("could not write the heartbeat of %s to Redis", hostname, exc_info=True)
    beats = dict(cache.get(WORKERS_KEY) or {})
    beats[hostname] = at
    cache.set(WORKERS_KEY, beats, timeout=None)


def worker_gone(hostname: str) -> None:
    """Forget the worker `hostname` (it shut down)."""
    try:
        client = redis()
        if client is not None:
            client.hdel(WORKERS_KEY, hostname)
            return
    except Exception:
        logger.warning("could not remove the heartbeat of %s", hostname, exc_info=True)
    beats = dict(cache.get(WORKERS_KEY) or {})
    beats.pop(hostname, None)
    cache.set(WORKERS_KEY, beats, timeout=None)


def beats() -> dict[str, float]:
    """Every known worker and when it was last heard of (epoch seconds)."""
    client = redis()
    if client is not None:
        raw = client.hgetall(WORKERS_KEY)
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): float(v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
    return {str(k): float(v) for k, v in (cache.get(WORKERS_KEY) or {}).items()}


# --- from the worker process itself ------------------------------------------------------

_stop = threading.Event()


def _beat_forever(hostname: str) -> None:
    while not _stop.wait(HEARTBEAT_SECONDS):
        try:
            worker_beat(hostname)
        except Exception:
            logger.warning("worker heartbeat failed", exc_info=True)


def _on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    hostname = str(getattr(sender, "hostname", "") or "worker")
    try:
        worker_beat(hostname)
    except Exception:
        logger.warning("could not write the first worker heartbeat", exc_info=True)
    _stop.clear()
    threading.Thread(target=_beat_forever, args=(hostname,), name="marketerapi-heartbeat", daemon=True).start()


def _on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    _stop.set()
    try:
        worker_gone(str(getattr(sender, "hostname", "") or "worker"))
    except Exception:
        logger.warning("could not remove the worker heartbeat", exc_info=True)


def connect_worker_signals() -> None:
    """Beat when a worker starts, from a thread while it runs, and forget it on shutdown
    (connecting again is harmless)."""
    worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="integrations.heartbeat.ready")
    worker_shutdown.connect(_on_worker_shutdown, weak=False, dispatch_uid="integrations.heartbeat.shutdown")
