"""Circuit breakers: open after 5 consecutive server failures, never on a vendor 4xx,
half-open after the cool-down with one trial at a time; shared through Redis, with an
in-process fallback."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from integrations.adapters import CircuitOpen, ServerFailure, VendorRejected
from integrations.adapters.webhook import WebhookAdapter
from integrations.destinations import breakers
from integrations.destinations.breakers import Breaker, MemoryStore, RedisStore
from tests.conftest import require_service

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")

T0 = 1_800_000_000.0


def redis_store() -> RedisStore:
    if not settings.REDIS_URL:
        require_service("Redis", "REDIS_URL is not set")
    store = RedisStore(settings.REDIS_URL)
    try:
        store.client.ping()
    except Exception as exc:
        require_service("Redis", f"{settings.REDIS_URL} does not answer: {exc}")
    return store


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.services)])
def store(request, monkeypatch):
    """Run the breaker's rules against each store."""
    chosen = MemoryStore() if request.param == "in-process" else redis_store()
    chosen.clear()
    monkeypatch.setattr(breakers, "_stores", lambda: [chosen])
    yield chosen
    chosen.clear()


def test_opens_after_five_consecutive_server_failures(store):
    breaker = Breaker("t:open")
    for i in range(4):
        breaker.record_failure("503", now=T0 + i)
        assert breaker.allow(now=T0 + i) is True
    breaker.record_failure("503", now=T0 + 4)

    snap = breaker.snapshot(now=T0 + 5)
    assert (snap.state, snap.failures, snap.last_error) == ("open", 5, "503")
    assert snap.retry_at is not None and snap.retry_at.timestamp() == T0 + 4 + breakers.cooldown_seconds()
    assert breaker.allow(now=T0 + 5) is False
    assert snap.store == store.name


def test_a_success_ends_a_run_of_failures(store):
    breaker = Breaker("t:run")
    for i in range(4):
        breaker.record_failure("timeout", now=T0 + i)
    breaker.record_success(now=T0 + 5)
    for i in range(4):
        breaker.record_failure("timeout", now=T0 + 6 + i)
    assert breaker.snapshot(now=T0 + 10).state == "closed"


def test_half_open_after_the_cooldown_lets_one_trial_through(store):
    breaker = Breaker("t:half")
    for _ in range(5):
        breaker.record_failure("500", now=T0)
    later = T0 + breakers.cooldown_seconds() + 1

    assert breaker.snapshot(now=later).state == "half_open"
    assert breaker.allow(now=later) is True  # the trial
    assert breaker.allow(now=later + 1) is False  # everyone else waits for it
    assert breaker.allow(now=later + breakers.TRIAL_LEASE_SECONDS + 1) is True  # a stuck trial's lease ran out


def test_a_successful_trial_closes_the_breaker(store):
    breaker = Breaker("t:recover")
    for _ in range(5):
        breaker.record_failure("500", now=T0)
    later = T0 + breakers.cooldown_seconds() + 1
    assert breaker.allow(now=later)
    breaker.record_success(now=later)

    snap = breaker.snapshot(now=later)
    assert (snap.state, snap.failures) == ("closed", 0)
    assert breaker.allow(now=later) is True


def test_a_failed_trial_opens_it_again_for_a_new_cooldown(store):
    breaker = Breaker("t:relapse")
    for _ in range(5):
        breaker.record_failure("500", now=T0)
    later = T0 + breakers.cooldown_seconds() + 1
    assert breaker.allow(now=later)
    breaker.record_failure("503", now=later)

    snap = breaker.snapshot(now=later + 1)
    assert snap.state == "open" and snap.retry_at.timestamp() == later + breakers.cooldown_seconds()
    assert breaker.allow(now=later + 1) is False


def test_reset_closes_it_by_hand(store):
    breaker = Breaker("t:reset")
    for _ in range(6):
        breaker.record_failure("500", now=T0)
    breaker.reset()
    assert breaker.snapshot(now=T0).state == "closed" and breaker.allow(now=T0)


def test_threshold_and_cooldown_follow_settings(store):
    with override_settings(DESTINATION_BREAKER_THRESHOLD=2, DESTINATION_BREAKER_COOLDOWN=5):
        breaker = Breaker("t:settings")
        breaker.record_failure("500", now=T0)
        breaker.record_failure("500", now=T0)
        snap = breaker.snapshot(now=T0)
    assert snap.state == "open" and snap.retry_at.timestamp() == T0 + 5


@pytest.mark.services
def test_two_processes_share_the_state_through_redis(monkeypatch):
    first, second = redis_store(), RedisStore(settings.REDIS_URL)
    first.clear()
    monkeypatch.setattr(breakers, "_stores", lambda: [first])
    for _ in range(5):
        Breaker("t:shared").record_failure("503", now=T0)
    monkeypatch.setattr(breakers, "_stores", lambda: [second])
    assert Breaker("t:shared").allow(now=T0 + 1) is False
    first.clear()


def test_without_redis_answering_the_in_process_store_takes_over():
    with override_settings(REDIS_URL="redis://127.0.0.1:9/0"):
        breakers._redis_store.cache_clear()
        breaker = Breaker("t:fallback")
        for _ in range(5):
            breaker.record_failure("503", now=T0)
        snap = breaker.snapshot(now=T0)
    breakers._redis_store.cache_clear()
    assert snap.state == "open" and snap.store == "in-process"


# --- through an adapter -------------------------------------------------------------------


def test_adapter_calls_open_the_breaker_after_five_server_failures(server, sleeps):
    server.always(503)
    breaker = Breaker("t:adapter")
    hook = WebhookAdapter({"url": server.url}, {}, breaker=breaker)

    with pytest.raises(ServerFailure):
        hook.push_members([{"external_id": "a"}], [])  # 3 failures (a call and two retries)
    with pytest.raises(CircuitOpen) as caught:
        hook.push_members([{"external_id": "a"}], [])  # 2 more: open, the third try is refused

    assert len(server.calls()) == 5
    assert caught.value.snapshot.state == "open" and caught.value.snapshot.failures == 5
    assert "5 failures, last: 503" in caught.value.message
    with pytest.raises(CircuitOpen):
        hook.push_members([{"external_id": "a"}], [])
    assert len(server.calls()) == 5  # nothing more reached the vendor


def test_vendor_4xx_never_trips_the_breaker(server, sleeps):
    server.always(400, {"message": "bad request"})
    breaker = Breaker("t:4xx")
    hook = WebhookAdapter({"url": server.url}, {}, breaker=breaker)

    for _ in range(10):
        with pytest.raises(VendorRejected):
            hook.push_members([{"external_id": "a"}], [])

    assert breaker.snapshot().state == "closed" and breaker.snapshot().failures == 0


def test_rate_limits_never_trip_the_breaker(server, sleeps):
    server.always(429, {}, {"Retry-After": "600"})
    breaker = Breaker("t:429")
    for _ in range(6):
        with pytest.raises(Exception, match="rate limiting"):
            WebhookAdapter({"url": server.url}, {}, breaker=breaker).push_members([{"external_id": "a"}], [])
    assert breaker.snapshot().state == "closed"


def test_half_open_recovery_through_an_adapter(server, sleeps, monkeypatch):
    clock = [T0]
    breaker = Breaker("t:adapter-recovery", clock=lambda: clock[0])
    hook = WebhookAdapter({"url": server.url}, {}, breaker=breaker)
    server.always(500)
    for _ in range(2):
        with pytest.raises((ServerFailure, CircuitOpen)):
            hook.push_members([{"external_id": "a"}], [])
    assert breaker.snapshot().state == "open"

    server.heal()
    clock[0] = T0 + breakers.cooldown_seconds() + 1
    assert breaker.snapshot().state == "half_open"
    result = hook.push_members([{"external_id": "a"}], [])

    assert result.delivered == 1
    assert breaker.snapshot().state == "closed"
