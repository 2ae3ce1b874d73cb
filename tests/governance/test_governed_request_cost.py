"""What a governed request costs, and that the shortcuts keep every promise.

A warm token request spends one Redis round trip (the token cache's version check and the
rate limiter's count, in one Lua step) and no query on authentication, roles or
permissions (governance/permcache.py, governance/limits/throttling.py). A revocation, a role
change or a deactivation still applies on the next request, also when it was committed
while another request was loading the token, and also after Redis lost the version.
"""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance import permcache
from governance.models import ApiToken
from tests.conftest import require_service
from tests.governance.test_ratelimit import parsed, set_token_limits

GOVERNANCE_TABLES = ("governance_apitoken", "auth_permission", "auth_group", "auth_user", "governance_environment")


@pytest.fixture
def redis_commands(monkeypatch):
    """The commands this process sends to Redis while the test runs."""
    import redis
    from redis.connection import Connection

    if not settings.REDIS_URL:
        require_service("Redis", "REDIS_URL is not set")
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        require_service("Redis", str(exc))
    sent: list[str] = []
    original = Connection.send_command

    def send_command(self, *args, **kwargs):
        sent.append(str(args[0]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_command", send_command)
    return sent


def _auth_queries(captured) -> list[str]:
    return [q["sql"] for q in captured if any(table in q["sql"] for table in GOVERNANCE_TABLES)]


def test_a_warm_token_request_costs_one_redis_round_trip_and_no_auth_query(api, redis_commands):
    client = api("developer")
    assert client.get("/api/v1/profiles/").status_code == 200  # loads and caches the token

    redis_commands.clear()
    with CaptureQueriesContext(connection) as warm:
        response = client.get("/api/v1/profiles/")

    assert response.status_code == 200 and "RateLimit" in response
    assert redis_commands == ["EVALSHA"]
    assert _auth_queries(warm.captured_queries) == []


def test_the_count_is_made_once_per_request_also_when_the_token_is_counted_early(api):
    client = api("developer")

    remaining = [parsed(client.get("/api/v1/me"))[1]["r"] for _ in range(3)]

    assert remaining == ["1199", "1198", "1197"]


def test_a_request_refused_by_a_permission_is_counted_once_and_becomes_429_over_the_limit(api):
    client = api("analyst")
    set_token_limits(client, write=2)

    responses = [client.post("/api/v1/tokens/", {"name": "x"}, format="json") for _ in range(3)]

    assert [r.status_code for r in responses] == [403, 403, 429]
    assert [parsed(r)[1]["r"] for r in responses] == ["1", "0", "0"]
    assert responses[2].json()["code"] == "rate_limited"


def test_a_role_change_applies_on_the_next_warm_request(api):
    client = api("analyst")
    client.get("/api/v1/profiles/")
    assert client.post("/api/v1/consent/sync", {"updates": []}, format="json").status_code == 403

    client.user.groups.add(Group.objects.get(name="developer"))

    assert client.post("/api/v1/consent/sync", {"updates": []}, format="json").status_code != 403
    assert parsed(client.get("/api/v1/me"))[0]["q"] == "1200"  # the developer's read limit


def test_a_version_is_never_reused_so_a_lost_version_key_drops_every_cached_token(api):
    client = api("developer")
    assert client.get("/api/v1/profiles/").status_code == 200
    # What the signals cannot see (a raw UPDATE), then Redis losing the version key.
    ApiToken.objects.filter(user=client.user).update(revoked_at=timezone.now())
    cache.delete(permcache.VERSION_KEY)

    refused = client.get("/api/v1/profiles/")

    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"


def test_last_used_at_is_written_once_a_minute_across_processes(api):
    client = api("developer")
    client.get("/api/v1/profiles/")
    token = ApiToken.objects.get(user=client.user)
    first = token.last_used_at
    assert first is not None

    permcache.forget_local()  # as another process would start: from the shared cache
    client.get("/api/v1/profiles/")

    token.refresh_from_db()
    assert token.last_used_at == first


@pytest.mark.services
@pytest.mark.slow
def test_a_revocation_committed_while_another_request_loads_the_token_applies_after_commit(
    django_db_serialized_rollback, transactional_db, api
):
    """The version is bumped when the token is saved and again at commit: a request that
    read the token before the commit cannot leave it cached under the final version."""
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "needs two connections that see different snapshots")
    client = api("developer")
    client.get("/api/v1/profiles/")  # last_used_at is fresh: the request below writes nothing
    token = ApiToken.objects.get(user=client.user)
    statuses: list[int] = []

    def request_meanwhile() -> None:
        try:
            permcache.forget_local()
            statuses.append(client.get("/api/v1/profiles/").status_code)
        finally:
            connections.close_all()

    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        worker = threading.Thread(target=request_meanwhile)
        worker.start()
        worker.join(timeout=60)

    assert statuses == [200]  # the revocation was not committed yet
    refused = client.get("/api/v1/profiles/")
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"


def test_the_client_address_is_normalized_and_junk_in_x_forwarded_for_is_ignored(rf, settings):
    from governance.actors import client_ip

    settings.TRUSTED_PROXIES = 1
    assert client_ip(rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 2001:DB8::1", REMOTE_ADDR="10.0.0.2")) == "2001:db8::1"
    assert client_ip(rf.get("/", HTTP_X_FORWARDED_FOR="<script>", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"
    assert client_ip(rf.get("/", REMOTE_ADDR="")) is None


def test_x_forwarded_for_is_believed_only_as_far_as_the_trusted_proxies(rf, settings):
    """Issue 12: a client wrote 6.6.6.6 into the audit trail by sending X-Forwarded-For."""
    from governance.actors import client_ip

    spoofed = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6", REMOTE_ADDR="203.0.113.9")
    settings.TRUSTED_PROXIES = 0
    assert client_ip(spoofed) == "203.0.113.9"
    settings.TRUSTED_PROXIES = 1  # one proxy appended the address it saw
    through_one = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7", REMOTE_ADDR="10.0.0.2")
    assert client_ip(through_one) == "198.51.100.7"
    settings.TRUSTED_PROXIES = 2
    through_two = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7, 10.0.0.3", REMOTE_ADDR="10.0.0.2")
    assert client_ip(through_two) == "198.51.100.7"
    assert client_ip(rf.get("/", HTTP_X_FORWARDED_FOR="198.51.100.7", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"


def test_an_audited_call_with_an_upper_case_ipv6_address_leaves_the_chain_intact(api, sandbox, settings):
    from governance.audit import chain

    settings.TRUSTED_PROXIES = 1
    client = api("developer")
    response = client.post(
        "/api/v1/tokens/", {"name": "x", "scopes": ["read"]}, format="json", HTTP_X_FORWARDED_FOR="2001:DB8::A"
    )

    assert response.status_code == 201
    assert chain.check_chain(sandbox.pk).valid


@pytest.fixture
def limiter(redis_commands):
    import redis

    from governance.limits.ratelimit import MemoryLimiter, RedisLimiter

    return RedisLimiter(redis.Redis.from_url(settings.REDIS_URL), fallback=MemoryLimiter())


def test_the_guarded_step_counts_only_while_the_version_holds(limiter):
    key, version_key = f"{settings.RATELIMIT_KEY_PREFIX}:read:guard", f"{settings.RATELIMIT_KEY_PREFIX}:version"
    limiter.client.set(version_key, 41)
    try:
        counted = limiter.hit_if_current(key, 5, 60, version_key=version_key, version=41)
        stale = limiter.hit_if_current(key, 5, 60, version_key=version_key, version=40)
        limiter.client.delete(version_key)
        missing = limiter.hit_if_current(key, 5, 60, version_key=version_key, version=41)
    finally:
        limiter.client.delete(version_key)

    assert counted is not None and counted.allowed and counted.count == 1
    assert stale is None and missing is None
    assert limiter.client.zcard(key) == 1


def test_the_script_survives_a_script_flush_and_a_closed_connection(limiter):
    key = f"{settings.RATELIMIT_KEY_PREFIX}:read:survive"
    assert limiter.hit(key, 5, 60).count == 1

    limiter.client.script_flush()  # as after a Redis restart: NOSCRIPT, loaded again
    assert limiter.hit(key, 5, 60).count == 2

    connection = limiter.script._connection()
    connection.send_command("CLIENT", "ID")
    limiter.client.client_kill_filter(_id=connection.read_response())  # as Redis closing an idle one
    assert limiter.hit(key, 5, 60).count == 3
    assert limiter._down_until == 0.0  # never fell back to the in-process limiter
