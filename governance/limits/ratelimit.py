"""Rate limits: how fast one may call the API, per rate class (GLOSSARY: rate class, not quota).

Four workflow classes, each a number of accepted requests in any 60 seconds, per token
(per user for portal-session calls, per IP address for unauthenticated ones):

    read 600    write 120    preview 60    bulk 20

multiplied per role (ROLE_MULTIPLIERS, the one table of it) and overridable per token
(`ApiToken.rate_limits`, e.g. {"bulk": 5}: an absolute number that replaces the computed
one). A view names its class (`rate_class = "bulk"`); otherwise GET, HEAD and OPTIONS are
`read` and every other method `write`. docs/limits.md is the integrator's version.

The limiter is a sliding-window log: a request is accepted when fewer than `limit`
requests were accepted in the last `window` seconds, so "120 a minute" means at most
120 in any 60 seconds, with no burst at window edges. With REDIS_URL it is one Lua
script (governance/limits/ratelimit.lua), atomic across processes and hosts; without it (make
run, the tests) an in-process limiter with the same interface.

Redis unavailable: fail open, to this process's own limiter, with a logged warning.
Limits protect the service from runaway clients; they are not an access control (roles,
scopes and the policy engine are) and not the business limits (quotas, kept in the
database). Failing closed would turn a Redis outage into an outage of the whole API;
failing to the local limiter still bounds a runaway client, only N times looser with N
processes.

Headers follow draft-ietf-httpapi-ratelimit-headers-11 (Structured Fields):

    RateLimit-Policy: "write";q=120;w=60
    RateLimit: "write";r=87;t=23
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from governance.roles import ADMIN, DEVELOPER

logger = logging.getLogger("governance.limits.ratelimit")

READ, WRITE, PREVIEW, BULK = "read", "write", "preview", "bulk"
WINDOW_SECONDS = 60
# Accepted requests per WINDOW_SECONDS (PRODUCT.md §6, Limits).
RATE_CLASSES: dict[str, int] = {READ: 600, WRITE: 120, PREVIEW: 60, BULK: 20}
# Per role and class; a person with several roles gets the largest. Developers and admins
# run the integrations: they sync reads and ingest in bulk, so both double. Writes and
# previews (one aggregate query over every profile) stay the same for everyone: they are
# paced by people, and previews are what loads the database.
ROLE_MULTIPLIERS: dict[str, dict[str, int]] = {
    DEVELOPER: {READ: 2, BULK: 2},
    ADMIN: {READ: 2, BULK: 2},
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# A Redis call that takes longer than this counts as Redis being down.
REDIS_TIMEOUT_SECONDS = 0.5
# After a Redis error, use the local limiter this long before trying Redis again, so an
# outage costs each request nothing rather than a timeout.
REDIS_RETRY_SECONDS = 5.0

LUA_SCRIPT = (Path(__file__).with_name("ratelimit.lua")).read_text()


# --- what limit applies -----------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """The limit in force for one caller and one rate class."""

    rate_class: str
    limit: int
    window: int
    # Where the number comes from: "default", "role:<name>" or "token".
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "window": self.window, "source": self.source}


def _override(overrides: Mapping[str, Any] | None, rate_class: str) -> int | None:
    value = overrides.get(rate_class) if isinstance(overrides, Mapping) else None
    # JSON edited by hand in the admin may hold anything; only a whole number counts.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def limit_for(rate_class: str, *, roles: Iterable[str] = (), overrides: Mapping[str, Any] | None = None) -> Limit:
    """The limit of `rate_class` for a caller with these roles and token overrides."""
    if rate_class not in RATE_CLASSES:
        raise ValueError(f"unknown rate class {rate_class!r}; use one of {', '.join(RATE_CLASSES)}")
    override = _override(overrides, rate_class)
    if override is not None:
        return Limit(rate_class, override, WINDOW_SECONDS, "token")
    factor, source = 1, "default"
    for role in sorted(roles):
        multiplier = ROLE_MULTIPLIERS.get(role, {}).get(rate_class, 1)
        if multiplier > factor:
            factor, source = multiplier, f"role:{role}"
    return Limit(rate_class, RATE_CLASSES[rate_class] * factor, WINDOW_SECONDS, source)


def limits_for(*, roles: Iterable[str] = (), overrides: Mapping[str, Any] | None = None) -> dict[str, Limit]:
    """Every class's limit for one caller (GET /me shows them)."""
    roles = list(roles)
    return {name: limit_for(name, roles=roles, overrides=overrides) for name in RATE_CLASSES}


def override_errors(overrides: Any) -> list[str]:
    """What is wrong with a token's `rate_limits` (for the code that stores them)."""
    if not isinstance(overrides, Mapping):
        return ['rate_limits must be an object, e.g. {"bulk": 5}.']
    errors = [
        f"{name!r} is not a rate class; use {', '.join(RATE_CLASSES)}."
        for name in overrides
        if name not in RATE_CLASSES
    ]
    errors += [
        f"{name}: {value!r} is not a whole number of requests per minute."
        for name, value in overrides.items()
        if name in RATE_CLASSES and _override(overrides, name) is None
    ]
    return errors


def rate_class_for(view: Any, method: str) -> str:
    """The class a view declares (`rate_class = "bulk"`, or per method {"POST": "preview"}),
    else read for GET/HEAD/OPTIONS and write for the other methods."""
    declared = getattr(view, "rate_class", None)
    if isinstance(declared, Mapping):
        declared = declared.get(method.upper())
    if declared:
        if declared not in RATE_CLASSES:
            raise ValueError(f"{type(view).__name__}.rate_class is {declared!r}; use one of {', '.join(RATE_CLASSES)}")
        return str(declared)
    return READ if method.upper() in SAFE_METHODS else WRITE


# --- the answer and its headers -----------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """A limiter's answer: accepted or not, requests now counted, seconds to wait.

    The wait is, when accepted, until the oldest counted request leaves the window (one
    more request then fits); when refused, until this request would fit.
    """

    allowed: bool
    count: int
    wait: float


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    rate_class: str
    limit: int
    window: int
    remaining: int
    # The draft's effective window `t`: within this many seconds, at most `remaining` more.
    reset: int
    # Seconds until a refused request would be accepted; 0 when accepted.
    retry_after: int

    @classmethod
    def from_hit(cls, limit: Limit, hit: Hit) -> RateLimitResult:
        # Whole seconds, rounded up: a client that waits `t` seconds is never early.
        wait = max(1, math.ceil(hit.wait))
        return cls(
            allowed=hit.allowed,
            rate_class=limit.rate_class,
            limit=limit.limit,
            window=limit.window,
            remaining=max(limit.limit - hit.count, 0) if hit.allowed else 0,
            reset=wait,
            retry_after=0 if hit.allowed else wait,
        )

    def headers(self) -> dict[str, str]:
        """RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-11), and
        Retry-After when refused; the draft asks Retry-After not to end before `t`."""
        out = {
            "RateLimit-Policy": f'"{self.rate_class}";q={self.limit};w={self.window}',
            "RateLimit": f'"{self.rate_class}";r={self.remaining};t={self.reset}',
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


# --- limiters -------------------------------------------------------------------------


class Limiter(Protocol):
    def hit(self, key: str, limit: int, window: int) -> Hit: ...

    def forget(self, prefix: str) -> None: ...


class MemoryLimiter:
    """The same sliding-window log in this process's memory, for one process (make run,
    tests) and as the fallback while Redis is down. Thread-safe."""

    # Drop the logs of idle keys every this many hits, so memory follows the active callers.
    SWEEP_EVERY = 1000

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._logs: dict[str, tuple[float, deque[float]]] = {}
        self._hits = 0

    def hit(self, key: str, limit: int, window: int) -> Hit:
        now = self._clock()
        with self._lock:
            _, log = self._logs.get(key, (0.0, deque()))
            cutoff = now - window
            while log and log[0] <= cutoff:
                log.popleft()
            if limit <= 0:
                result = Hit(False, len(log), float(window))
            elif len(log) < limit:
                log.append(now)
                result = Hit(True, len(log), log[0] + window - now)
            else:
                result = Hit(False, len(log), log[len(log) - limit] + window - now)
            self._logs[key] = (now + window, log)
            self._hits += 1
            if self._hits % self.SWEEP_EVERY == 0:
                self._sweep(now)
        return result

    def _sweep(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._logs.items() if expires <= now]:
            del self._logs[key]

    def forget(self, prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._logs if k.startswith(f"{prefix}:")]:
                del self._logs[key]


class _Script:
    """EVALSHA of the limiter's script on a connection of this thread's own.

    The script is the one Redis step of a governed request, and redis-py's way to send it
    (Script → client → connection pool, with its metrics) costs the web process several
    times the CPU that Redis spends running it. A connection kept per thread (and per
    process: a forked child opens its own; the socket closes with its thread) sends it
    directly. The script is loaded again after a Redis restart (NOSCRIPT); a connection
    that failed is dropped, and one found closed is replaced once before the error counts.
    """

    def __init__(self, client: Any, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self._local = threading.local()

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.pid != os.getpid():
            pool = self.client.connection_pool
            connection = self._local.connection = pool.connection_class(**pool.connection_kwargs)
        return connection

    def _run(self, connection: Any, keys: list[Any], args: list[Any]) -> Any:
        import redis

        try:
            connection.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            connection.send_command("SCRIPT", "LOAD", self.source)
            connection.read_response()
            connection.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
            return connection.read_response()

    def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        import redis

        connection = self._connection()
        try:
            return self._run(connection, keys, args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            connection.disconnect()
            if isinstance(exc, redis.TimeoutError):
                raise
            # A connection Redis closed while it sat idle (a restart, an idle timeout) fails
            # on first use, before the command reached Redis: once more, on a new socket,
            # as redis-py's own retry would (so at worst one request is counted twice).
            try:
                return self._run(connection, keys, args)
            except BaseException:
                connection.disconnect()
                raise
        except redis.ResponseError:
            raise
        except BaseException:
            # Anything else may leave a reply half read: never reuse the connection.
            connection.disconnect()
            raise


class RedisLimiter:
    """The limiter for several processes: one atomic Lua script per request."""

    def __init__(self, client: Any, *, fallback: MemoryLimiter | None = None) -> None:
        self.client = client
        # EVALSHA, loading the script again after a Redis restart (NOSCRIPT).
        self.script = _Script(client, LUA_SCRIPT)
        self.fallback = fallback if fallback is not None else MemoryLimiter()
        self._down_until = 0.0

    def hit(self, key: str, limit: int, window: int) -> Hit:
        import redis

        if time.monotonic() < self._down_until:
            return self.fallback.hit(key, limit, window)
        try:
            allowed, count, wait_us = self.script(keys=[key], args=[limit, window * 1_000_000, secrets.token_hex(6)])
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning(
                "Rate limits: Redis is unavailable (%s); limiting in this process only for the next %.0f s.",
                exc,
                REDIS_RETRY_SECONDS,
            )
            return self.fallback.hit(key, limit, window)
        return Hit(bool(allowed), int(count), int(wait_us) / 1_000_000)

    def hit_if_current(self, key: str, limit: int, window: int, *, version_key: str, version: int) -> Hit | None:
        """`hit`, in the same atomic step as checking that the Redis string `version_key`
        still holds `version` (the token cache's version, governance/permcache.py).

        None, with nothing counted, when it does not (the cached token must be reloaded)
        or when Redis is unavailable: the caller then takes its slow path, which counts
        the request with `hit` (falling back to this process's limiter) on its own.
        """
        import redis

        if time.monotonic() < self._down_until:
            return None
        try:
            allowed, count, wait_us = self.script(
                keys=[key, version_key], args=[limit, window * 1_000_000, secrets.token_hex(6), version]
            )
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning(
                "Rate limits: Redis is unavailable (%s); limiting in this process only for the next %.0f s.",
                exc,
                REDIS_RETRY_SECONDS,
            )
            return None
        if int(allowed) < 0:
            return None
        return Hit(bool(allowed), int(count), int(wait_us) / 1_000_000)

    def forget(self, prefix: str) -> None:
        """Delete every key under `prefix` (tests isolate themselves with their own prefix)."""
        keys = list(self.client.scan_iter(match=f"{prefix}:*", count=500))
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start : start + 500])
        self.fallback.forget(prefix)


_memory = MemoryLimiter()
_redis_limiters: dict[str, RedisLimiter] = {}
_limiters_lock = threading.Lock()


def redis_limiter(url: str) -> RedisLimiter:
    """One limiter, and so one connection pool, per Redis URL and process (redis-py
    starts a new pool in a forked child by itself)."""
    limiter = _redis_limiters.get(url)
    if limiter is None:
        import redis

        with _limiters_lock:
            limiter = _redis_limiters.get(url)
            if limiter is None:
                client = redis.Redis.from_url(
                    url,
                    socket_timeout=REDIS_TIMEOUT_SECONDS,
                    socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                    health_check_interval=30,
                )
                limiter = _redis_limiters[url] = RedisLimiter(client, fallback=_memory)
    return limiter


def get_limiter() -> Limiter:
    """Redis when REDIS_URL is set, else this process's memory."""
    url = settings.REDIS_URL
    return redis_limiter(url) if url else _memory


def _key(subject: str, limit: Limit) -> str:
    return f"{settings.RATELIMIT_KEY_PREFIX}:{limit.rate_class}:{subject}"


def check(subject: str, limit: Limit) -> RateLimitResult:
    """Count one request of `subject` ("token:7", "user:3", "ip:203.0.113.9") against `limit`."""
    return RateLimitResult.from_hit(limit, get_limiter().hit(_key(subject, limit), limit.limit, limit.window))


def check_if_current(subject: str, limit: Limit, *, version_key: str, version: int) -> RateLimitResult | None:
    """`check`, in one atomic Redis step with checking that the Redis string `version_key`
    still holds `version`; None, with nothing counted, when it does not or when that
    cannot be done in one step (no Redis, Redis down)."""
    limiter = get_limiter()
    if not isinstance(limiter, RedisLimiter):
        return None
    key = _key(subject, limit)
    hit = limiter.hit_if_current(key, limit.limit, limit.window, version_key=version_key, version=version)
    return None if hit is None else RateLimitResult.from_hit(limit, hit)


def forget_prefix(prefix: str) -> None:
    """Forget every count under `prefix` (keys `<prefix>:…`), in Redis (if configured and up)
    and in memory."""
    _memory.forget(prefix)
    if settings.REDIS_URL:
        import redis

        try:
            redis_limiter(settings.REDIS_URL).forget(prefix)
        except redis.RedisError:
            logger.warning("Rate limits: could not forget %s:* in Redis.", prefix)
