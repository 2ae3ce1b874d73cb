"""The preview budget: what one preview (or validate) may cost the database.

A preview is one aggregate query over every profile of the environment; a rule with fifty
`contains` conditions on custom attributes and fifty event conditions took 20 s on
200,000 profiles, and four at once held every web worker (issue 12, hole 4). Three
bounds, checked in this order by every door that previews (API preview and validate, the
portal's preview panel and checks — they share `audience_preview` / `audience_validate`):

1. **Cost ceiling**, before anything runs: `rules_cost` scores the parsed rule (each
   condition 1, a `contains` or `starts_with` 4 — 8 on a custom attribute, which has no
   index —, an event condition 6 plus 2 per property test, `in_audience` 3). Above
   PREVIEW_MAX_COST: 422 `preview_too_expensive`.
2. **Concurrency**: at most PREVIEW_CONCURRENCY_PER_USER previews running at once per
   person (or token without a person) and PREVIEW_CONCURRENCY_PER_ENVIRONMENT per
   environment. Slots live in Redis (a sorted set per key, each slot scored by its
   expiry, so a killed process never holds one for longer than the statement timeout plus
   a margin); without Redis, or while it is down, in this process. Past it: 429
   `preview_busy` with Retry-After.
3. **Statement timeout** (PostgreSQL): `SET LOCAL statement_timeout` for the preview's
   statements only, with its other settings (audiences/reach.py, `timeout_ms`); a
   cancelled statement is 422 `preview_timed_out`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import OperationalError

from audiences.definitions.errors import PreviewBusy, PreviewTimedOut, PreviewTooExpensive
from audiences.rules import CUSTOM_PREFIX
from governance.actors import Actor

logger = logging.getLogger("audiences.preview_budget")

# A Redis call slower than this counts as Redis being down; after that, the slots are kept
# in this process for REDIS_RETRY_SECONDS (fail open to the local bound, like rate limits).
REDIS_TIMEOUT_SECONDS = 0.5
REDIS_RETRY_SECONDS = 5.0
RETRY_AFTER_SECONDS = 2

# --- cost -----------------------------------------------------------------------------------

SUBSTRING_OPS = frozenset({"contains", "starts_with"})


def rules_cost(node: Any) -> int:
    """The complexity score of a (valid) rule tree: what the cost ceiling compares."""
    if not isinstance(node, dict):
        return 0
    if "all" in node or "any" in node:
        children = node.get("all", node.get("any"))
        return sum(rules_cost(child) for child in children) if isinstance(children, list) else 0
    if "not" in node:
        return rules_cost(node["not"])
    if "attr" in node:
        custom = str(node.get("attr", "")).startswith(CUSTOM_PREFIX)
        if node.get("op") in SUBSTRING_OPS:
            return 8 if custom else 4
        return 2 if custom else 1
    if "event" in node:
        where = node.get("where") or []
        substring = sum(1 for test in where if isinstance(test, dict) and test.get("op") == "contains")
        return 6 + 2 * (len(where) if isinstance(where, list) else 0) + 2 * substring
    if "in_audience" in node:
        return 3
    return 1


def check_cost(rules: Any) -> int:
    cost = rules_cost(rules)
    ceiling = settings.PREVIEW_MAX_COST
    if cost > ceiling:
        raise PreviewTooExpensive(
            f"These rules score {cost} against a ceiling of {ceiling}: a `contains` on a custom attribute counts "
            "8, an event condition 6 (plus 2 per property test), other conditions 1 to 4.",
            cost=cost,
            max_cost=ceiling,
        )
    return cost


# --- concurrency ----------------------------------------------------------------------------

# KEYS: slot sets; ARGV: now, expiry, token, then one limit per key. 1 = acquired.
ACQUIRE_LUA = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then return 0 end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[3])
  redis.call('PEXPIREAT', key, math.floor(tonumber(ARGV[2]) * 1000) + 1000)
end
return 1
"""


class MemorySlots:
    """The slots of this process (no Redis, or Redis down)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, dict[str, float]] = {}

    def acquire(self, keys: list[tuple[str, int]], token: str, expires: float) -> bool:
        now = time.time()
        with self._lock:
            for key, limit in keys:
                held = {t: e for t, e in self._slots.get(key, {}).items() if e > now}
                self._slots[key] = held
                if len(held) >= limit:
                    return False
            for key, _ in keys:
                self._slots[key][token] = expires
            return True

    def release(self, keys: list[str], token: str) -> None:
        with self._lock:
            for key in keys:
                self._slots.get(key, {}).pop(token, None)

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()


_memory = MemorySlots()
_redis_clients: dict[str, Any] = {}
_redis_down_until = 0.0


def _redis() -> Any:
    url = settings.REDIS_URL
    if not url or time.monotonic() < _redis_down_until:
        return None
    client = _redis_clients.get(url)
    if client is None:
        import redis

        client = _redis_clients[url] = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
    return client


def _redis_failed(exc: Exception) -> None:
    global _redis_down_until
    _redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
    logger.warning("Preview slots: Redis is unavailable (%s); counting in this process only for now.", exc)


def _subject(actor: Actor) -> str:
    if actor.user is not None:
        return f"user:{actor.user.pk}"
    if actor.token is not None:
        return f"token:{actor.token.pk}"
    return f"ip:{actor.ip or 'unknown'}"


def slot_keys(actor: Actor) -> list[tuple[str, int]]:
    """The person's and the environment's slot sets (under the rate limits' key prefix, which
    two deployments sharing a Redis set apart), each with its limit."""
    prefix = f"{settings.RATELIMIT_KEY_PREFIX}:preview-slots"
    return [
        (f"{prefix}:{_subject(actor)}", settings.PREVIEW_CONCURRENCY_PER_USER),
        (f"{prefix}:env:{actor.environment.pk}", settings.PREVIEW_CONCURRENCY_PER_ENVIRONMENT),
    ]


@contextmanager
def preview_slot(actor: Actor) -> Iterator[None]:
    """Hold one of the actor's and one of the environment's preview slots while the block
    runs; 429 `preview_busy` when either is full. A slot expires by itself after the
    statement timeout plus a margin (a process killed mid-preview never releases it)."""
    import redis

    keys = slot_keys(actor)
    token = secrets.token_hex(8)
    expires = time.time() + settings.PREVIEW_STATEMENT_TIMEOUT_MS / 1000 * 3 + 5
    client = _redis()
    store: Any = _memory
    acquired = False
    if client is not None:
        try:
            acquired = bool(
                client.eval(
                    ACQUIRE_LUA,
                    len(keys),
                    *[key for key, _ in keys],
                    time.time(),
                    expires,
                    token,
                    *[limit for _, limit in keys],
                )
            )
            store = client
        except redis.RedisError as exc:
            _redis_failed(exc)
            client = None
    if client is None:
        acquired = _memory.acquire(keys, token, expires)
    if not acquired:
        raise PreviewBusy(
            f"At most {settings.PREVIEW_CONCURRENCY_PER_USER} of your previews and "
            f"{settings.PREVIEW_CONCURRENCY_PER_ENVIRONMENT} in {actor.environment.slug} run at once.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            retry_after=RETRY_AFTER_SECONDS,
        )
    try:
        yield
    finally:
        if store is _memory:
            _memory.release([key for key, _ in keys], token)
        else:
            try:
                for key, _ in keys:
                    store.zrem(key, token)
            except redis.RedisError as exc:  # the slot expires by itself
                _redis_failed(exc)


# --- statement timeout ----------------------------------------------------------------------

QUERY_CANCELED = "57014"


def _timed_out(exc: BaseException) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == QUERY_CANCELED or "statement timeout" in str(exc)


@contextmanager
def timeouts_refused() -> Iterator[None]:
    """A statement the timeout cancelled (reach.py sets PREVIEW_STATEMENT_TIMEOUT_MS with the
    preview's other settings, in the same statement) becomes 422 `preview_timed_out`.
    The preview's own transaction is rolled back by then; inside a caller's transaction
    that one must be rolled back by the caller (no door previews inside one)."""
    try:
        yield
    except OperationalError as exc:
        if not _timed_out(exc):
            raise
        milliseconds = settings.PREVIEW_STATEMENT_TIMEOUT_MS
        raise PreviewTimedOut(
            f"The preview was stopped after {milliseconds / 1000:g} seconds.", timeout_ms=milliseconds
        ) from None


@contextmanager
def preview_budget(*, actor: Actor, rules: Any) -> Iterator[None]:
    """Cost, then a slot, around one preview or validate; its statements run with the
    statement timeout (reach.py), and one it cancels is refused here."""
    check_cost(rules)
    with preview_slot(actor), timeouts_refused():
        yield
