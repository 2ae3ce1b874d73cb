"""The Redis limiter is atomic across processes: 200 concurrent requests from 4 processes
against a limit of 100 → exactly 100 accepted (DRF's cache throttles read, then write,
and let more through)."""

from __future__ import annotations

import multiprocessing
import uuid

import pytest
from django.conf import settings

# Where fork is missing, spawned workers import this module: so no Django models at import
# time (tests.conftest has them).
PROCESSES = 4
PER_PROCESS = 50
LIMIT = 100


def _hammer(url: str, key: str, barrier, results) -> None:
    # Its own Redis connection: nothing of the parent's limiter is shared.
    import redis

    from governance.limits.ratelimit import MemoryLimiter, RedisLimiter

    limiter = RedisLimiter(redis.Redis.from_url(url), fallback=MemoryLimiter())
    barrier.wait()
    accepted = sum(limiter.hit(key, LIMIT, 60).allowed for _ in range(PER_PROCESS))
    results.put(accepted)


@pytest.mark.services
def test_200_concurrent_requests_from_4_processes_against_a_limit_of_100_accept_exactly_100():
    import redis

    from tests.conftest import require_service

    if not settings.REDIS_URL:
        require_service("Redis", "REDIS_URL is not set")
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", str(exc))
    key = f"{settings.RATELIMIT_KEY_PREFIX}:race:{uuid.uuid4().hex}"
    # fork starts in a fraction of a second; the workers touch neither Django nor the database.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(target=_hammer, args=(settings.REDIS_URL, key, barrier, results)) for _ in range(PROCESSES)
    ]

    for worker in workers:
        worker.start()
    accepted = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    assert all(worker.exitcode == 0 for worker in workers)
    assert sum(accepted) == LIMIT, accepted
    assert client.zcard(key) == LIMIT
    client.delete(key)
