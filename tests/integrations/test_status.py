"""`GET /status`: database, broker, cache, workers by heartbeat, and each destination with
its breaker — readable by every role, without secrets."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from integrations.destinations import breakers
from integrations.status import heartbeats
from integrations.status import selectors as status
from tests.factories import DestinationFactory
from tests.refusals import refused

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")

URL = "/api/v1/status"
SECRET = "sk-status-SECRET-777"


@pytest.mark.parametrize("who", ["analyst", "operator", "approver", "compliance", "developer", "admin"])
def test_every_role_may_read_the_status(api, who):
    response = api(who).get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["status"] == "ok"
    assert set(body) >= {
        "status",
        "checked_at",
        "environment",
        "database",
        "broker",
        "cache",
        "workers",
        "destinations",
    }


def test_a_user_without_a_role_may_not(api):
    refused(api("nobody").get(URL), 403, "permission_denied")


def test_the_broker_is_named_or_in_process(api):
    body = api("analyst").get(URL).json()
    if settings.CELERY_TASK_ALWAYS_EAGER:
        assert body["broker"] == {"status": "ok", "kind": "in-process (no broker)"}
        assert body["workers"]["mode"] == "in-process" and body["workers"]["status"] == "ok"
    else:
        assert body["broker"]["status"] == "ok", body["broker"]
        assert body["broker"]["kind"].startswith(settings.CELERY_BROKER_URL.split("://")[0] + "://")
        assert body["workers"]["mode"] == "celery"


def test_a_degraded_destination_shows_its_breaker(api, sandbox, pilot, tmp_path):
    healthy = DestinationFactory(environment=sandbox, adapter="file", config={"directory": str(tmp_path)}, name="drop")
    down = DestinationFactory(
        environment=sandbox,
        adapter="webhook",
        config={"url": "http://127.0.0.1:9/hook"},
        credentials={"token": SECRET},
        name="hook",
    )
    DestinationFactory(environment=pilot, adapter="file", config={"directory": str(tmp_path)}, name="pilot-only")
    for _ in range(5):
        breakers.Breaker.for_destination(down).record_failure("503")

    body = api("analyst").get(URL).json()

    assert body["status"] == "degraded"
    by_name = {d["name"]: d for d in body["destinations"]}
    assert set(by_name) == {"drop", "hook"}
    assert by_name["hook"]["status"] == "degraded"
    assert by_name["hook"]["breaker"]["state"] == "open"
    assert by_name["hook"]["breaker"]["consecutive_failures"] == 5
    assert by_name["hook"]["breaker"]["retry_at"]
    assert "Calls are paused after 5 consecutive failures" in by_name["hook"]["explanation"]
    assert by_name["drop"]["status"] == "unknown"
    assert healthy.pk == by_name["drop"]["id"]
    text = str(body)
    assert SECRET not in text and "127.0.0.1:9/hook" not in text


def test_broker_trouble_is_down_and_never_shows_a_password(api):
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL="redis://:hunter2@127.0.0.1:9/1"):
        body = api("analyst").get(URL).json()
    assert body["status"] == "down"
    assert body["broker"]["status"] == "down"
    assert body["broker"]["kind"] == "redis://127.0.0.1:9/1"
    assert "hunter2" not in str(body)


def test_workers_are_known_by_heartbeat():
    now = time.time()
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        heartbeats.worker_beat("celery@alive", now=now - 5)
        heartbeats.worker_beat("celery@silent", now=now - 600)
        try:
            report = status.workers_check(now=now)
        finally:
            heartbeats.worker_gone("celery@alive")
            heartbeats.worker_gone("celery@silent")
        gone = status.workers_check(now=now)
    by_name = {w["name"]: w["alive"] for w in report["workers"]}
    assert by_name == {"celery@alive": True, "celery@silent": False}
    assert report["status"] == "ok" and report["alive"] == 1
    assert gone["status"] == "down" and "celery -A marketerapi worker" in gone["detail"]


def test_the_heartbeat_task_records_its_worker(monkeypatch):
    from integrations.tasks import worker_heartbeat_task

    seen = []
    monkeypatch.setattr(heartbeats, "worker_beat", lambda name, now=None: seen.append(name))
    worker_heartbeat_task.apply(headers={"hostname": "celery@here"})
    assert len(seen) == 1


def test_the_retry_sweep_and_the_heartbeat_are_in_the_one_beat_schedule():
    from marketerapi.celery import app

    schedule = app.conf.beat_schedule

    assert schedule["integrations.retry_deferred_pushes sweep"]["task"] == "integrations.retry_deferred_pushes"
    assert schedule["integrations.retry_deferred_pushes sweep"]["schedule"] == 30.0
    assert schedule["integrations.worker_heartbeat"]["task"] == "integrations.worker_heartbeat"
    assert schedule["integrations.worker_heartbeat"]["schedule"] == heartbeats.HEARTBEAT_SECONDS
    # Every scheduled task exists: a typo in the table would never run.
    app.loader.import_default_modules()
    assert {entry["task"] for entry in schedule.values()} <= set(app.tasks)


@pytest.mark.services
@pytest.mark.slow
def test_a_real_worker_process_is_seen_by_its_heartbeat():
    """A `celery worker` writes its heartbeat when ready and removes it on shutdown."""
    import os
    import subprocess
    import sys
    import uuid

    from tests.conftest import require_service
    from tests.processes import ROOT

    broker = os.environ.get("CELERY_BROKER_URL", "") or settings.CELERY_BROKER_URL
    if not settings.REDIS_URL or not broker or broker.startswith("memory://"):
        require_service("Redis and a Celery broker", "REDIS_URL and CELERY_BROKER_URL must be set")
    queue = f"test-heartbeat-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "marketerapi.settings_test"}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "marketerapi", "worker", "--pool", "solo", "--queues", queue,
         "--hostname", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        seen: list[dict] = []
        with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
            while time.monotonic() < deadline and not seen:
                seen = [w for w in status.workers_check()["workers"] if w["name"].startswith(queue)]
                time.sleep(0.5)
        if not seen:
            process.terminate()
            pytest.fail(f"no heartbeat within 60 s; worker output:\n{process.communicate(timeout=20)[0]}")
        assert seen[0]["alive"] is True
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        assert not [w for w in status.workers_check()["workers"] if w["name"].startswith(queue)]


# --- with Redis down ------------------------------------------------------------------------


def _dead_redis_url() -> str:
    """A Redis URL on a local port nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def redis_down(settings):
    """Call it to take Redis away (after the test's users and tokens exist): the cache, the
    rate limiter, the breakers and the heartbeats all point at a port nothing listens on."""
    from governance import permcache

    def take_away() -> None:
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
        breakers.clear_all()

    yield take_away
    permcache.forget_local()
    breakers.clear_all()


@pytest.mark.parametrize("warm", [False, True], ids=["cold token", "token cached in this process"])
def test_with_redis_down_the_status_still_answers_and_says_so(api, redis_down, warm):
    client = api("analyst")
    if warm:
        assert client.get(URL).status_code == 200
    redis_down()

    response = client.get(URL)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "degraded" and body["database"]["status"] == "ok"
    assert body["cache"]["status"] == "down" and body["cache"]["kind"] == "redis"
    assert "REDIS_URL" in body["cache"]["hint"] and "503" in body["cache"]["hint"]
    assert "127.0.0.1" not in body["cache"].get("detail", ""), "no address of an internal service in the detail"


def test_with_redis_down_a_bad_token_is_still_refused(api, redis_down):
    redis_down()
    from rest_framework.test import APIClient

    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Bearer mk_sandbox_not-a-real-token-0000000000")

    assert stranger.get(URL).status_code == 401


def test_with_redis_down_a_revoked_token_and_a_roleless_user_are_still_refused(api, redis_down):
    from governance.models import ApiToken

    revoked, nobody = api("developer"), api("nobody")
    ApiToken.objects.filter(user=revoked.user).update(revoked_at=timezone.now())
    redis_down()

    assert revoked.get(URL).status_code == 401
    assert revoked.get(URL).json()["code"] == "token_revoked"
    assert nobody.get(URL).status_code == 403


def test_with_redis_down_other_endpoints_keep_their_documented_503(api, redis_down):
    client = api("analyst")
    redis_down()

    assert client.get("/api/v1/me").status_code == 503


def test_with_redis_silent_the_status_answers_within_seconds(api, settings):
    """Redis accepts connections and never answers (a hung server, a network dropping
    packets): the deployment's Redis timeouts (settings.REDIS_CACHE_OPTIONS) bound the wait."""
    import socket
    import time

    from governance import permcache

    client = api("analyst")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        settings.REDIS_URL = url
        settings.CACHES = {
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": url,
                "OPTIONS": settings.REDIS_CACHE_OPTIONS,
            }
        }
        permcache.forget_local()
        breakers.clear_all()
        started = time.monotonic()

        response = client.get(URL)

        took = time.monotonic() - started
    permcache.forget_local()
    breakers.clear_all()
    assert response.status_code == 200, response.content
    assert response.json()["cache"]["status"] == "down"
    assert took < 10, f"/status took {took:.1f} s with Redis silent"


def test_with_redis_down_a_portal_session_may_read_the_status_too(persona, redis_down):
    from django.test import Client

    browser = Client()
    browser.force_login(persona("operator"))
    redis_down()

    response = browser.get(URL)

    assert response.status_code == 200, response.content
    assert response.json()["cache"]["status"] == "down"
