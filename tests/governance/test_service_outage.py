"""When Redis (the cache of tokens and permissions, the rate limits' store) stops answering,
an API call gets a 503 problem with Retry-After and a hint, never a raw 500."""

from __future__ import annotations

import socket

import pytest

from governance import permcache
from marketerapi.problems import is_service_outage


def _dead_redis_url() -> str:
    """A Redis URL on a local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def redis_down(settings):
    """Call it to take Redis away (after the test's users and tokens exist)."""
    yield lambda: _take_away(settings)
    permcache.forget_local()


def _take_away(settings) -> None:
    url = _dead_redis_url()
    settings.REDIS_URL = url
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", "SOCKET_CONNECT_TIMEOUT": 0.2},
        }
    }
    permcache.forget_local()


def test_a_token_request_while_redis_is_down_is_a_503_problem_with_retry_after(api, redis_down):
    client = api("developer")
    redis_down()

    response = client.get("/api/v1/me")

    assert response.status_code == 503, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert "Retry-After" in body["hint"] and body["request_id"]
    assert "127.0.0.1" not in response.content.decode(), "no internals in the answer"


def test_a_revocation_while_redis_is_down_is_refused_whole_so_no_cache_can_keep_the_token(api, sandbox, redis_down):
    """A revocation must bump the token cache's version; when it cannot, it writes nothing
    (the caller retries) rather than leaving caches that still trust the token."""
    from governance.access.services import token_revoke
    from governance.actors import Actor
    from governance.models import ApiToken, AuditEvent

    client = api("developer")
    token = ApiToken.objects.get(user=client.user)
    events = AuditEvent.objects.count()
    redis_down()

    with pytest.raises(Exception) as caught:
        token_revoke(actor=Actor(user=client.user, environment=sandbox), token=token)

    assert is_service_outage(caught.value), caught.value

    token.refresh_from_db()
    assert token.revoked_at is None
    assert AuditEvent.objects.count() == events
