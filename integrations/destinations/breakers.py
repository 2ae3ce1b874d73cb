"""Circuit breakers, one per destination: stop calling a vendor that is down, and probe it
again after a cool-down.

    closed ──5 consecutive server failures──> open ──cool-down──> half_open
      ^                                                              │
      └────────────── the trial call succeeds ───────────────────────┤
                      the trial call fails ──> open (a new cool-down)┘

- A *server failure* is a 5xx, a timeout or a connection error: the vendor is down or
  overloaded. A vendor 4xx (bad request, bad key, rate limited) proves the vendor is up,
  so it never counts, and it ends a run of failures like a success does.
- In half-open one trial call at a time is let through (a lease, so a worker killed
  mid-trial does not wedge the breaker); everyone else is told "open" until it resolves.
- State is shared by every process through Redis (REDIS_URL): one small hash per
  destination, changed by Lua scripts so concurrent workers never lose an update. Without
  REDIS_URL, or while Redis does not answer, an in-process store with the same rules is
  used (one process only: fine for development and tests, and better than failing).
- Times are passed in (`now`, epoch seconds) so the services and tests drive one clock.

The breaker knows nothing about the database; destinations/pushing.py mirrors what
matters (last success, last failure, last error) onto the Destination row.

Why not a library: pybreaker (the best kept Python one, with a CircuitRedisStorage) was
weighed against what this module does, and falls short on each point that matters here:

- Atomic shared state. pybreaker keeps state, counter and opened_at in separate Redis
  keys, read and written in separate round trips, and serializes callers with a
  `threading.RLock` held during the call — one process only. Two workers can both see
  "open, cool-down over", both switch to half-open and both call the vendor. Here each
  transition is one Lua script, so any number of processes agree.
- One trial call at a time, leased. pybreaker's half-open state lets every caller through
  until the first result; here one caller holds a trial lease (TRIAL_LEASE_SECONDS) and
  the others are told "open", and a worker killed mid-trial does not wedge the breaker.
- Falling back, not failing open. When Redis does not answer, pybreaker returns a fixed
  `fallback_circuit_state` and drops the failure counts; here an in-process store with
  the same rules takes over (and Redis is skipped for REDIS_RETRY_SECONDS, not waited on).
- A snapshot for people. /status, the health endpoint, the admin and the job warnings
  show the state, the consecutive failures, the last error and when calls resume
  (`Snapshot`); pybreaker stores none of last error, last failure or retry time.
- The services' clock. Every method takes `now`, so a push deferred "until the breaker's
  cool-down ends" and the tests run on one clock; pybreaker reads `datetime.now()`.
- What counts as a failure is the adapter's call, not an exception wrapped by the
  breaker: a vendor 4xx ends a run of failures, 429s never count, retries inside one call
  count each; and keys of destinations nobody calls expire (KEY_TTL_SECONDS).

Adopting pybreaker would mean a custom storage with Lua scripts, a custom half-open
state and a snapshot beside it: this module, with a dependency on top.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from django.conf import settings

logger = logging.getLogger("marketerapi.breakers")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)

# How long one half-open trial may take before another caller may try: longer than the
# slowest call (connect + read timeouts and the adapter's own retries).
TRIAL_LEASE_SECONDS = 90.0
# Breaker state of a destination nobody has called for a week is forgotten (closed).
KEY_TTL_SECONDS = 7 * 24 * 3600
KEY_PREFIX = "marketerapi:breaker:"
ERROR_CHARS = 300


def failure_threshold() -> int:
    """Consecutive server failures that open a breaker (DESTINATION_BREAKER_THRESHOLD)."""
    return int(settings.DESTINATION_BREAKER_THRESHOLD)


def cooldown_seconds() -> float:
    """How long an open breaker waits before a trial call (DESTINATION_BREAKER_COOLDOWN)."""
    return float(settings.DESTINATION_BREAKER_COOLDOWN)


@dataclass(frozen=True)
class Snapshot:
    """What a breaker says about one destination at one moment."""

    key: str
    state: str = CLOSED
    failures: int = 0
    last_error: str = ""
    last_failure_at: float | None = None
    last_success_at: float | None = None
    opened_at: float | None = None
    open_until: float | None = None
    store: str = "in-process"

    @property
    def is_closed(self) -> bool:
        return self.state == CLOSED

    @property
    def retry_at(self) -> datetime | None:
        """When work held back by this breaker is next tried (the end of the cool-down)."""
        if self.state == CLOSED or self.open_until is None:
            return None
        return datetime.fromtimestamp(self.open_until, tz=UTC)

    def as_dict(self) -> dict[str, Any]:
        def at(value: float | None) -> str | None:
            if value is None:
                return None
            return datetime.fromtimestamp(value, tz=UTC).isoformat().replace("+00:00", "Z")

        return {
            "state": self.state,
            "consecutive_failures": self.failures,
            "threshold": failure_threshold(),
            "last_error": self.last_error,
            "last_failure_at": at(self.last_failure_at),
            "opened_at": at(self.opened_at),
            "retry_at": at(self.open_until) if self.state != CLOSED else None,
            "store": self.store,
        }


def _float(value: Any) -> float | None:
    if value in (None, b"", ""):
        return None
    return float(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _snapshot(key: str, data: dict[str, Any], store: str) -> Snapshot:
    data = {_text(k): v for k, v in data.items()}
    return Snapshot(
        key=key,
        state=_text(data.get("state")) or CLOSED,
        failures=int(_text(data.get("failures")) or 0),
        last_error=_text(data.get("last_error")),
        last_failure_at=_float(data.get("last_failure_at")),
        last_success_at=_float(data.get("last_success_at")),
        opened_at=_float(data.get("opened_at")),
        open_until=_float(data.get("open_until")),
        store=store,
    )


class Store(Protocol):
    name: str

    def allow(self, key: str, now: float) -> bool: ...
    def success(self, key: str, now: float) -> None: ...
    def failure(self, key: str, now: float, error: str, threshold: int, cooldown: float) -> None: ...
    def read(self, key: str) -> dict[str, Any]: ...
    def reset(self, key: str) -> None: ...
    def clear(self) -> None: ...


# --- in-process store -------------------------------------------------------------------


class MemoryStore:
    """The same rules as the Lua scripts below, for one process."""

    name = "in-process"

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float) -> bool:
        with self._lock:
            data = self._data.get(key)
            if not data or data.get("state", CLOSED) == CLOSED:
                return True
            if data["state"] == OPEN:
                if now < float(data.get("open_until") or 0):
                    return False
                data.update(state=HALF_OPEN, trial_until=now + TRIAL_LEASE_SECONDS)
                return True
            # half-open: one trial at a time, until its lease runs out
            if now < float(data.get("trial_until") or 0):
                return False
            data["trial_until"] = now + TRIAL_LEASE_SECONDS
            return True

    def success(self, key: str, now: float) -> None:
        with self._lock:
            data = self._data.setdefault(key, {})
            for name in ("opened_at", "open_until", "trial_until"):
                data.pop(name, None)
            data.update(state=CLOSED, failures=0, last_success_at=now)

    def failure(self, key: str, now: float, error: str, threshold: int, cooldown: float) -> None:
        with self._lock:
            data = self._data.setdefault(key, {})
            data["failures"] = int(data.get("failures", 0)) + 1
            data.update(last_error=error, last_failure_at=now)
            state = data.get("state", CLOSED)
            if state == HALF_OPEN or (state == CLOSED and data["failures"] >= threshold):
                data.pop("trial_until", None)
                data.update(state=OPEN, opened_at=now, open_until=now + cooldown)

    def read(self, key: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._data.get(key, {}))

    def reset(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


# --- Redis store ------------------------------------------------------------------------

_ALLOW = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then return 1 end
local now = tonumber(ARGV[1])
if state == 'open' then
  if now < tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'trial_until', tostring(now + tonumber(ARGV[2])))
  return 1
end
if now < tonumber(redis.call('HGET', KEYS[1], 'trial_until') or '0') then return 0 end
redis.call('HSET', KEYS[1], 'trial_until', tostring(now + tonumber(ARGV[2])))
return 1
"""

_SUCCESS = """
redis.call('HDEL', KEYS[1], 'opened_at', 'open_until', 'trial_until')
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0', 'last_success_at', ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

_FAILURE = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[2], 'last_failure_at', ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' or (state == 'closed' and failures >= tonumber(ARGV[3])) then
  redis.call('HDEL', KEYS[1], 'trial_until')
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1],
             'open_until', tostring(tonumber(ARGV[1]) + tonumber(ARGV[4])))
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return failures
"""


class RedisStore:
    name = "redis"

    def __init__(self, url: str) -> None:
        import redis

        # Short timeouts: a breaker that waits on a slow Redis slows every push.
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._allow = self.client.register_script(_ALLOW)
        self._success = self.client.register_script(_SUCCESS)
        self._failure = self.client.register_script(_FAILURE)

    def allow(self, key: str, now: float) -> bool:
        return bool(self._allow(keys=[key], args=[repr(now), TRIAL_LEASE_SECONDS]))

    def success(self, key: str, now: float) -> None:
        self._success(keys=[key], args=[repr(now), KEY_TTL_SECONDS])

    def failure(self, key: str, now: float, error: str, threshold: int, cooldown: float) -> None:
        self._failure(keys=[key], args=[repr(now), error, threshold, cooldown, KEY_TTL_SECONDS])

    def read(self, key: str) -> dict[str, Any]:
        return {_text(k): v for k, v in self.client.hgetall(key).items()}

    def reset(self, key: str) -> None:
        self.client.delete(key)

    def clear(self) -> None:
        for key in self.client.scan_iter(match=f"{KEY_PREFIX}*", count=500):
            self.client.delete(key)


_memory = MemoryStore()


@lru_cache(maxsize=4)
def _redis_store(url: str) -> RedisStore:
    return RedisStore(url)


def redis_client() -> Any:
    """The Redis client of REDIS_URL (shared with the worker heartbeats), or None."""
    url = settings.REDIS_URL
    return _redis_store(url).client if url else None


def _stores() -> list[Store]:
    """The shared store first when configured, then the in-process fallback."""
    url = settings.REDIS_URL
    return [_redis_store(url), _memory] if url else [_memory]


# After Redis failed to answer, skip it for this long instead of waiting for its timeout on
# every call.
REDIS_RETRY_SECONDS = 15.0
_redis_down_until = 0.0


def _run(operation: str, call: Any) -> Any:
    global _redis_down_until
    stores = _stores()
    if len(stores) > 1 and time.monotonic() < _redis_down_until:
        stores = stores[1:]
    for index, store in enumerate(stores):
        try:
            return call(store)
        except Exception:
            if index == len(stores) - 1:
                raise
            # Redis is down: keep working on this process's own view rather than failing
            # every push; the shared state resumes when Redis answers again.
            _redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning("breaker %s: Redis unavailable, using the in-process store", operation, exc_info=True)
    return None


# --- the breaker ------------------------------------------------------------------------


class Breaker:
    """The breaker of one destination (`Breaker.for_destination(dest)`).

    `clock` gives "now" in epoch seconds when a call names none (tests and services that
    run on a clock of their own pass it).
    """

    def __init__(self, key: str, clock: Callable[[], float] | None = None) -> None:
        self.key = key if key.startswith(KEY_PREFIX) else KEY_PREFIX + key
        self.clock = clock or time.time

    @classmethod
    def for_destination(cls, destination: Any, clock: Callable[[], float] | None = None) -> Breaker:
        return cls(f"destination:{destination.pk}", clock)

    def allow(self, now: float | None = None) -> bool:
        """May a call go out now? Open: no. Half-open: yes for one trial at a time."""
        at = self.clock() if now is None else now
        return bool(_run("allow", lambda store: store.allow(self.key, at)))

    def record_success(self, now: float | None = None) -> None:
        at = self.clock() if now is None else now
        _run("success", lambda store: store.success(self.key, at))

    def record_failure(self, error: str, now: float | None = None) -> None:
        at = self.clock() if now is None else now
        text = (error or "server failure")[:ERROR_CHARS]
        threshold, cooldown = failure_threshold(), cooldown_seconds()
        _run("failure", lambda store: store.failure(self.key, at, text, threshold, cooldown))

    def snapshot(self, now: float | None = None) -> Snapshot:
        def read(store: Store) -> Snapshot:
            return _snapshot(self.key, store.read(self.key), store.name)

        snap: Snapshot = _run("read", read)
        at = self.clock() if now is None else now
        if snap.state == OPEN and snap.open_until is not None and at >= snap.open_until:
            # The cool-down is over: the next call is a trial. Say so without changing state.
            return replace(snap, state=HALF_OPEN)
        return snap

    def reset(self) -> None:
        """Close the breaker and forget its failures (an operator's decision)."""
        _run("reset", lambda store: store.reset(self.key))


class Probe(Breaker):
    """A breaker that lets every call through but records its outcome on the real one.

    An operator's "test connection" probes even while the breaker is open: a success
    closes it (the operator has seen the vendor answer), a failure keeps it open.
    """

    def __init__(self, breaker: Breaker) -> None:
        super().__init__(breaker.key, breaker.clock)

    def allow(self, now: float | None = None) -> bool:
        return True


def clear_all() -> None:
    """Forget every breaker (tests)."""
    global _redis_down_until
    _redis_down_until = 0.0
    for store in _stores():
        try:
            store.clear()
        except Exception:
            logger.warning("could not clear breakers in %s", store.name, exc_info=True)
