"""Rate limits: classes, role multipliers, token overrides, headers on every API response,
the 429 problem, the in-process limiter and the Redis limiter (governance/limits/ratelimit.py)."""

from __future__ import annotations

import logging
import re
import threading
from types import SimpleNamespace

import pytest
from django.conf import settings

from governance.limits import ratelimit
from governance.limits.ratelimit import Limit, MemoryLimiter, RateLimitResult, RedisLimiter, limit_for, rate_class_for
from governance.models import ApiToken
from tests.conftest import require_service

POLICY = re.compile(r'^"(?P<name>[a-z]+)";q=(?P<q>\d+);w=(?P<w>\d+)$')
STATE = re.compile(r'^"(?P<name>[a-z]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def parsed(response) -> tuple[dict[str, str], dict[str, str]]:
    policy = POLICY.match(response["RateLimit-Policy"])
    state = STATE.match(response["RateLimit"])
    assert policy and state, (response["RateLimit-Policy"], response["RateLimit"])
    return policy.groupdict(), state.groupdict()


def set_token_limits(client, **limits: int) -> None:
    token = ApiToken.objects.filter(user=client.user).latest("id")
    token.rate_limits = limits
    token.save(update_fields=["rate_limits"])


# --- the table -----------------------------------------------------------------------


def test_the_classes_and_their_numbers():
    assert ratelimit.RATE_CLASSES == {"read": 600, "write": 120, "preview": 60, "bulk": 20}
    assert ratelimit.WINDOW_SECONDS == 60


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ([], {"read": 600, "write": 120, "preview": 60, "bulk": 20}),
        (["analyst"], {"read": 600, "write": 120, "preview": 60, "bulk": 20}),
        (["campaign_operator"], {"read": 600, "write": 120, "preview": 60, "bulk": 20}),
        (["developer"], {"read": 1200, "write": 120, "preview": 60, "bulk": 40}),
        (["admin"], {"read": 1200, "write": 120, "preview": 60, "bulk": 40}),
        # Several roles: the largest multiplier per class.
        (["analyst", "developer"], {"read": 1200, "write": 120, "preview": 60, "bulk": 40}),
    ],
)
def test_role_multipliers(roles, expected):
    assert {name: limit.limit for name, limit in ratelimit.limits_for(roles=roles).items()} == expected


def test_a_token_override_replaces_the_computed_limit_for_its_class_only():
    limits = ratelimit.limits_for(roles=["developer"], overrides={"bulk": 5, "read": 5000})

    assert limits["bulk"] == Limit("bulk", 5, 60, "token")
    assert limits["read"] == Limit("read", 5000, 60, "token")
    assert limits["write"] == Limit("write", 120, 60, "default")


def test_malformed_overrides_are_ignored_and_reported():
    overrides = {"bulk": "lots", "read": -1, "write": True, "nope": 3}

    assert limit_for("bulk", overrides=overrides).limit == 20
    assert limit_for("read", overrides=overrides).limit == 600
    assert limit_for("write", overrides=overrides).limit == 120
    errors = ratelimit.override_errors(overrides)
    assert len(errors) == 4 and any("'nope' is not a rate class" in e for e in errors)
    assert ratelimit.override_errors({"bulk": 5}) == []


def test_a_view_declares_its_class_or_gets_read_and_write_by_method():
    assert rate_class_for(SimpleNamespace(), "GET") == "read"
    assert rate_class_for(SimpleNamespace(), "HEAD") == "read"
    assert rate_class_for(SimpleNamespace(), "POST") == "write"
    assert rate_class_for(SimpleNamespace(), "DELETE") == "write"
    assert rate_class_for(SimpleNamespace(rate_class="bulk"), "POST") == "bulk"
    per_method = SimpleNamespace(rate_class={"POST": "preview"})
    assert rate_class_for(per_method, "POST") == "preview"
    assert rate_class_for(per_method, "GET") == "read"
    with pytest.raises(ValueError, match="rate_class is 'fast'"):
        rate_class_for(SimpleNamespace(rate_class="fast"), "GET")


def test_header_syntax_follows_the_draft():
    accepted = RateLimitResult(True, "write", 120, 60, 87, 23, 0)
    refused = RateLimitResult(False, "bulk", 20, 60, 0, 17, 17)

    assert accepted.headers() == {"RateLimit-Policy": '"write";q=120;w=60', "RateLimit": '"write";r=87;t=23'}
    assert refused.headers() == {
        "RateLimit-Policy": '"bulk";q=20;w=60',
        "RateLimit": '"bulk";r=0;t=17',
        "Retry-After": "17",
    }


# --- headers on every API response ------------------------------------------------------


def test_a_successful_read_carries_the_headers(api):
    response = api("analyst").get("/api/v1/me")

    assert response.status_code == 200
    policy, state = parsed(response)
    assert policy == {"name": "read", "q": "600", "w": "60"}
    assert state["name"] == "read" and state["r"] == "599" and 1 <= int(state["t"]) <= 60
    assert "Retry-After" not in response


def test_the_count_goes_down_per_request_and_per_class(api):
    client = api("developer")

    first = parsed(client.get("/api/v1/me"))[1]
    second = parsed(client.get("/api/v1/me/quotas"))[1]
    write = client.post("/api/v1/tokens/", {"name": "x", "scopes": ["read"]}, format="json")

    assert (first["r"], second["r"]) == ("1199", "1198")
    assert write.status_code == 201
    assert parsed(write) == ({"name": "write", "q": "120", "w": "60"}, parsed(write)[1])
    assert parsed(write)[1]["r"] == "119"


def test_errors_carry_the_headers_too(api):
    client = api("analyst")

    forbidden = client.post("/api/v1/tokens/", {"name": "x"}, format="json")  # analysts may not
    unknown = client.get("/api/v1/no-such-thing")
    invalid = client.post("/api/v1/tokens/", {"nme": "x"}, format="json")

    assert forbidden.status_code == 403 and parsed(forbidden)[0]["name"] == "write"
    assert unknown.status_code == 404 and parsed(unknown)[0]["name"] == "read"
    assert invalid.status_code in (400, 403) and "RateLimit" in invalid


def test_unauthenticated_calls_are_counted_per_ip_address(db, client):
    anonymous = client.get("/api/v1/me", REMOTE_ADDR="203.0.113.7")
    bad_token = client.get("/api/v1/me", HTTP_AUTHORIZATION="Bearer mk_sandbox_nope", REMOTE_ADDR="203.0.113.7")
    elsewhere = client.get("/api/v1/me", REMOTE_ADDR="198.51.100.1")

    assert anonymous.status_code == 401 and bad_token.status_code == 401
    assert parsed(anonymous) == ({"name": "read", "q": "600", "w": "60"}, parsed(anonymous)[1])
    assert parsed(anonymous)[1]["r"] == "599" and parsed(bad_token)[1]["r"] == "598"
    assert parsed(elsewhere)[1]["r"] == "599"


def test_a_client_knocking_with_bad_tokens_gets_429_once_over_the_limit(db, client, monkeypatch):
    monkeypatch.setitem(ratelimit.RATE_CLASSES, "read", 2)
    knock = {"HTTP_AUTHORIZATION": "Bearer mk_sandbox_guess", "REMOTE_ADDR": "203.0.113.8"}

    statuses = [client.get("/api/v1/me", **knock).status_code for _ in range(3)]
    last = client.get("/api/v1/me", **knock)

    assert statuses == [401, 401, 429]
    assert last.status_code == 429 and last["Content-Type"] == "application/problem+json"
    assert last.json()["code"] == "rate_limited" and int(last["Retry-After"]) >= 1


def test_pages_outside_the_api_carry_no_rate_limit_headers(client):
    response = client.get("/healthz")

    assert response.status_code == 200 and "RateLimit" not in response


# --- enforcement ------------------------------------------------------------------------------


def test_over_the_limit_is_a_429_problem_with_retry_after_and_a_hint(api):
    client = api("analyst")
    set_token_limits(client, read=3)

    accepted = [client.get("/api/v1/me") for _ in range(3)]
    refused = client.get("/api/v1/me")

    assert [r.status_code for r in accepted] == [200, 200, 200]
    assert [parsed(r)[1]["r"] for r in accepted] == ["2", "1", "0"]
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "rate_limited" and body["status"] == 429
    assert body["rate_class"] == "read" and body["limit"] == 3 and body["violated-policies"] == ["read"]
    retry_after = int(refused["Retry-After"])
    assert 1 <= retry_after <= 60 and body["retry_after"] == retry_after
    assert f"Wait {retry_after} seconds" in body["hint"] and "GET /api/v1/me" in body["hint"]
    policy, state = parsed(refused)
    assert policy == {"name": "read", "q": "3", "w": "60"}
    # The draft: Retry-After does not end before the effective window.
    assert state["r"] == "0" and int(state["t"]) == retry_after
    assert body["request_id"] == refused["X-Request-ID"]


def test_limits_are_per_token(api):
    first, second = api("analyst"), api("approver")
    set_token_limits(first, read=1)

    assert first.get("/api/v1/me").status_code == 200
    assert first.get("/api/v1/me").status_code == 429
    assert second.get("/api/v1/me").status_code == 200


def test_a_session_call_is_limited_per_user(persona, client, monkeypatch):
    monkeypatch.setitem(ratelimit.RATE_CLASSES, "read", 1)
    user = persona("analyst")
    client.force_login(user)

    first = client.get("/api/v1/me")
    second = client.get("/api/v1/me")

    assert first.status_code == 200 and second.status_code == 429
    assert first.json()["token"] is None


def test_role_multiplier_and_token_override_are_in_force_and_shown_in_me(api):
    developer, analyst = api("developer"), api("analyst")
    set_token_limits(developer, bulk=5)

    mine = developer.get("/api/v1/me").json()["rate_limits"]
    theirs = analyst.get("/api/v1/me").json()["rate_limits"]

    assert mine["read"] == {"limit": 1200, "window": 60, "source": "role:developer"}
    assert mine["bulk"] == {"limit": 5, "window": 60, "source": "token"}
    assert mine["write"] == {"limit": 120, "window": 60, "source": "default"}
    assert theirs["read"] == {"limit": 600, "window": 60, "source": "default"}
    assert parsed(developer.get("/api/v1/me"))[0]["q"] == "1200"


# --- the in-process limiter ---------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_without_redis_the_limiter_is_in_process(settings):
    settings.REDIS_URL = ""

    assert isinstance(ratelimit.get_limiter(), MemoryLimiter)


def test_the_in_process_limiter_is_a_sliding_window():
    clock = FakeClock()
    limiter = MemoryLimiter(clock=clock)

    hits = [limiter.hit("k", 3, 60) for _ in range(3)]
    clock.now += 10
    refused = limiter.hit("k", 3, 60)

    assert [h.allowed for h in hits] == [True, True, True] and [h.count for h in hits] == [1, 2, 3]
    assert hits[0].wait == pytest.approx(60)
    assert not refused.allowed and refused.wait == pytest.approx(50)
    clock.now += 50  # the first three leave the window together
    assert limiter.hit("k", 3, 60).allowed
    assert limiter.hit("other", 3, 60).count == 1


def test_refused_requests_are_not_counted_so_a_client_recovers():
    clock = FakeClock()
    limiter = MemoryLimiter(clock=clock)
    limiter.hit("k", 1, 60)
    for _ in range(10):
        clock.now += 5
        assert not limiter.hit("k", 1, 60).allowed

    clock.now += 10

    assert limiter.hit("k", 1, 60).allowed


def test_a_lowered_limit_waits_for_enough_requests_to_leave():
    clock = FakeClock()
    limiter = MemoryLimiter(clock=clock)
    for step in range(5):
        clock.now = 1000.0 + step
        limiter.hit("k", 10, 60)

    refused = limiter.hit("k", 2, 60)

    # 5 counted, 2 allowed: the 4th oldest (t=1003) must leave first.
    assert not refused.allowed and refused.wait == pytest.approx(1003 + 60 - 1004)
    assert not limiter.hit("k", 0, 60).allowed


def test_the_in_process_limiter_is_thread_safe():
    limiter = MemoryLimiter()
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def worker() -> None:
        barrier.wait()
        for _ in range(10):
            allowed = limiter.hit("shared", 50, 60).allowed
            with lock:
                results.append(allowed)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 200 and results.count(True) == 50


def test_idle_keys_are_swept_from_memory(monkeypatch):
    clock = FakeClock()
    limiter = MemoryLimiter(clock=clock)
    monkeypatch.setattr(MemoryLimiter, "SWEEP_EVERY", 10)
    for index in range(5):
        limiter.hit(f"idle-{index}", 3, 60)
    clock.now += 61
    for _ in range(10):
        limiter.hit("busy", 100, 60)

    assert set(limiter._logs) == {"busy"}


# --- Redis: fail open, and the script itself ----------------------------------------------


def test_redis_down_fails_open_to_the_in_process_limiter_with_a_warning(caplog):
    import redis

    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    limiter = RedisLimiter(client, fallback=MemoryLimiter())
    calls = []
    original = limiter.script

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    limiter.script = counting

    with caplog.at_level(logging.WARNING, logger="governance.limits.ratelimit"):
        results = [limiter.hit("k", 2, 60) for _ in range(3)]

    assert [r.allowed for r in results] == [True, True, False]  # still limited, in this process
    assert "Redis is unavailable" in caplog.text
    assert len(calls) == 1  # no timeout per request while Redis is down


@pytest.fixture
def redis_limiter():
    import redis

    if not settings.REDIS_URL:
        require_service("Redis", "REDIS_URL is not set")
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", str(exc))
    return RedisLimiter(client, fallback=MemoryLimiter())


def test_with_redis_url_the_limiter_is_redis(settings, redis_limiter):
    assert isinstance(ratelimit.get_limiter(), RedisLimiter)


def test_the_redis_script_is_a_sliding_window(redis_limiter):
    key = f"{settings.RATELIMIT_KEY_PREFIX}:script"

    hits = [redis_limiter.hit(key, 3, 60) for _ in range(3)]
    refused = redis_limiter.hit(key, 3, 60)
    lowered = redis_limiter.hit(key, 2, 60)

    assert [h.allowed for h in hits] == [True, True, True] and [h.count for h in hits] == [1, 2, 3]
    assert 59 < hits[0].wait <= 60
    assert not refused.allowed and refused.count == 3 and 0 < refused.wait <= 60
    # Two allowed, three counted: the second oldest must leave first.
    assert not lowered.allowed and lowered.wait >= refused.wait
    assert not redis_limiter.hit(key, 0, 60).allowed
    ttl = redis_limiter.client.pttl(key)
    assert 0 < ttl <= 60_000  # idle keys expire on their own


def test_the_redis_window_slides(redis_limiter):
    import time

    key = f"{settings.RATELIMIT_KEY_PREFIX}:slide"

    assert redis_limiter.hit(key, 1, 1).allowed
    assert not redis_limiter.hit(key, 1, 1).allowed
    time.sleep(1.05)
    assert redis_limiter.hit(key, 1, 1).allowed


def test_forget_deletes_only_keys_under_the_prefix(redis_limiter):
    mine, other = f"{settings.RATELIMIT_KEY_PREFIX}:x", f"{settings.RATELIMIT_KEY_PREFIX}-other:x"
    redis_limiter.hit(mine, 5, 60)
    redis_limiter.hit(other, 5, 60)

    redis_limiter.forget(settings.RATELIMIT_KEY_PREFIX)

    assert redis_limiter.client.exists(mine) == 0 and redis_limiter.client.exists(other) == 1
    redis_limiter.client.delete(other)
