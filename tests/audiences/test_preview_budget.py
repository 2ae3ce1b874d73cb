"""The preview budget (issue 12, hole 4): a cost ceiling checked before anything runs, a
bound on previews running at once per person and per environment, and a statement
timeout on PostgreSQL — in every door that previews (API preview and validate, portal)."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings as django_settings
from django.db import connection

from audiences.definitions import budget
from audiences.definitions.errors import PreviewTimedOut
from tests.factories import AudienceFactory, ProfileFactory

pytestmark = pytest.mark.django_db

PREVIEW = "/api/v1/audiences/preview"
CUSTOMERS = {"attr": "lifecycle_stage", "op": "eq", "value": "customer"}


def expensive(n: int = 30) -> dict:
    """n `contains` on a custom attribute and n event conditions: the issue's starving rule."""
    return {
        "all": [{"attr": f"attributes.k{i}", "op": "contains", "value": "x"} for i in range(n)]
        + [{"event": "purchase", "within_days": 30} for _ in range(n)]
    }


@pytest.fixture(autouse=True)
def _own_slots():
    yield
    budget._memory.clear()


# --- cost ---------------------------------------------------------------------------------


def test_rules_cost_weights_contains_on_custom_attributes_and_events():
    assert budget.rules_cost(CUSTOMERS) == 1
    assert budget.rules_cost({"attr": "email", "op": "contains", "value": "a"}) == 4
    assert budget.rules_cost({"attr": "attributes.tier", "op": "contains", "value": "a"}) == 8
    assert budget.rules_cost({"attr": "attributes.tier", "op": "eq", "value": "a"}) == 2
    event = {"event": "purchase", "within_days": 3, "where": [{"property": "sku", "op": "contains", "value": "a"}]}
    assert budget.rules_cost(event) == 6 + 2 + 2
    assert budget.rules_cost({"not": {"any": [CUSTOMERS, {"in_audience": 3}]}}) == 4
    assert budget.rules_cost(expensive(50)) == 50 * 8 + 50 * 6


def test_a_preview_over_the_cost_ceiling_is_422_before_anything_runs(api, sandbox, django_assert_max_num_queries):
    client = api("analyst")
    client.get("/api/v1/me")  # the token is cached

    with django_assert_max_num_queries(1):  # the rules' in_audience check at most; no count
        response = client.post(PREVIEW, {"rules": expensive(), "channel": "email"}, format="json")

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "preview_too_expensive"
    assert "Split the rule" in body["hint"] and "contains" in body["hint"]
    assert body["cost"] == 30 * 8 + 30 * 6 and body["max_cost"] == django_settings.PREVIEW_MAX_COST


def test_the_ceiling_is_a_setting(api, sandbox, settings):
    settings.PREVIEW_MAX_COST = 3
    client = api("analyst")
    rules = {"all": [CUSTOMERS, {"attr": "attributes.tier", "op": "eq", "value": "gold"}]}
    assert client.post(PREVIEW, {"rules": rules, "channel": "email"}, format="json").status_code == 200
    rules["all"].append(CUSTOMERS)
    assert client.post(PREVIEW, {"rules": rules, "channel": "email"}, format="json").status_code == 422


def test_validate_refuses_an_audience_over_the_ceiling(api, sandbox):
    audience = AudienceFactory(environment=sandbox, rules=expensive())

    response = api("analyst").post(f"/api/v1/audiences/{audience.pk}/validate")

    assert response.status_code == 422 and response.json()["code"] == "preview_too_expensive"


def test_the_portal_preview_shows_the_cost_refusal_in_its_panel(client, persona, sandbox):
    import json

    client.force_login(persona("analyst"))
    response = client.post(
        "/audiences/preview/", {"rules": json.dumps(expensive()), "channel": "email"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 422
    assert b"Split the rule" in response.content


# --- concurrency ----------------------------------------------------------------------------


def test_a_person_past_their_concurrent_previews_gets_429_with_retry_after(api, actor, sandbox, settings):
    settings.PREVIEW_CONCURRENCY_PER_USER = 1
    analyst = actor("analyst")
    client = api("analyst")
    ProfileFactory(environment=sandbox)

    with budget.preview_slot(analyst):
        refused = client.post(PREVIEW, {"rules": CUSTOMERS, "channel": "email"}, format="json")
    after = client.post(PREVIEW, {"rules": CUSTOMERS, "channel": "email"}, format="json")

    assert refused.status_code == 429
    assert refused.json()["code"] == "preview_busy"
    assert "try again in a few seconds" in refused.json()["hint"].lower()
    assert int(refused["Retry-After"]) >= 1
    assert after.status_code == 200, after.json()


def test_the_environment_bound_holds_across_people(api, actor, sandbox, settings):
    settings.PREVIEW_CONCURRENCY_PER_ENVIRONMENT = 2
    first, second = actor("analyst"), actor("operator")

    with budget.preview_slot(first), budget.preview_slot(second):
        refused = api("approver").post(PREVIEW, {"rules": CUSTOMERS, "channel": "email"}, format="json")

    assert refused.status_code == 429 and refused.json()["code"] == "preview_busy"


def test_validate_counts_against_the_same_slots(api, actor, sandbox, settings):
    settings.PREVIEW_CONCURRENCY_PER_USER = 1
    audience = AudienceFactory(environment=sandbox, rules=CUSTOMERS)
    with budget.preview_slot(actor("analyst")):
        response = api("analyst").post(f"/api/v1/audiences/{audience.pk}/validate")
    assert response.status_code == 429


def test_a_slot_of_a_killed_process_expires_by_itself(monkeypatch):
    slots = budget.MemorySlots()
    keys = [("k", 1)]
    assert slots.acquire(keys, "dead", time.time() + 0.05)
    assert not slots.acquire(keys, "other", time.time() + 10)
    time.sleep(0.06)
    assert slots.acquire(keys, "other", time.time() + 10)


def test_a_refused_preview_releases_nothing_it_did_not_hold(actor, sandbox, settings):
    settings.PREVIEW_CONCURRENCY_PER_USER = 1
    analyst = actor("analyst")
    with budget.preview_slot(analyst):
        with pytest.raises(budget.PreviewBusy):
            with budget.preview_slot(analyst):
                pass
        # still held: a third one is refused too
        with pytest.raises(budget.PreviewBusy):
            with budget.preview_slot(analyst):
                pass
    with budget.preview_slot(analyst):
        pass


@pytest.mark.services
def test_slots_are_shared_through_redis_and_expire(actor, sandbox, settings):
    import redis

    from tests.conftest import require_service

    if not django_settings.REDIS_URL:
        require_service("Redis", "REDIS_URL is not set")
    try:
        redis.Redis.from_url(django_settings.REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        require_service("Redis", str(exc))
    budget._redis_down_until = 0.0
    settings.RATELIMIT_KEY_PREFIX = f"test:preview:{uuid.uuid4().hex[:12]}"
    settings.PREVIEW_CONCURRENCY_PER_USER = 1
    analyst = actor("analyst")
    key = budget.slot_keys(analyst)[0][0]
    client = budget._redis()

    with budget.preview_slot(analyst):
        assert client.zcard(key) == 1
        assert budget._memory.acquire([(key, 1)], "local", time.time() + 10)  # memory is not what counts
        with pytest.raises(budget.PreviewBusy):
            with budget.preview_slot(analyst):
                pass
    assert client.zcard(key) == 0
    # a process killed while holding a slot: the slot's score is its expiry
    client.zadd(key, {"killed": time.time() - 1})
    with budget.preview_slot(analyst):
        assert client.zscore(key, "killed") is None
    assert client.pttl(key) > 0 or not client.exists(key)


# --- statement timeout (PostgreSQL) ---------------------------------------------------------


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        from tests.conftest import require_service

        require_service("PostgreSQL", "the statement timeout is PostgreSQL's; set DATABASE_URL")


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_statement_timeout_stops_a_long_preview_statement(postgres, sandbox, settings):
    from audiences.reach import _analytic_statements

    started = time.monotonic()
    with pytest.raises(PreviewTimedOut) as refused:
        with budget.timeouts_refused(), _analytic_statements(timeout_ms=200):
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(3)")

    assert time.monotonic() - started < 2
    assert refused.value.status == 422 and refused.value.code == "preview_timed_out"
    with connection.cursor() as cursor:  # the connection is usable, without the timeout
        cursor.execute("SELECT current_setting('statement_timeout')")
        assert cursor.fetchone() == ("0",)


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_preview_that_runs_too_long_is_422_preview_timed_out(postgres, api, sandbox, settings, monkeypatch):
    from audiences.definitions import selectors
    from audiences.reach import _analytic_statements

    settings.PREVIEW_STATEMENT_TIMEOUT_MS = 200

    def slow_preview(**kwargs):
        assert kwargs["timeout_ms"] == 200
        with _analytic_statements(kwargs["timeout_ms"]), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(3)")

    monkeypatch.setattr(selectors, "compute_preview", slow_preview)

    response = api("analyst").post(PREVIEW, {"rules": CUSTOMERS, "channel": "email"}, format="json")

    assert response.status_code == 422
    assert response.json()["code"] == "preview_timed_out"
    assert "Split the rule" in response.json()["hint"]


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_preview_and_validate_run_under_the_timeout(postgres, api, sandbox, settings):
    """The real statements carry the timeout: at 1 ms even a tiny preview is stopped."""
    ProfileFactory(environment=sandbox)
    settings.PREVIEW_STATEMENT_TIMEOUT_MS = 1
    audience = AudienceFactory(environment=sandbox, rules=CUSTOMERS)
    client = api("analyst")
    from django.db import connection as conn

    def sleepy(execute, sql, params, many, context):
        if "COUNT(" in sql:  # the counting statement, slowed down: under the same settings
            execute("SELECT pg_sleep(0.05)", None, False, context)
        return execute(sql, params, many, context)

    with conn.execute_wrapper(sleepy):
        preview = client.post(PREVIEW, {"rules": CUSTOMERS, "channel": "email"}, format="json")
        validate = client.post(f"/api/v1/audiences/{audience.pk}/validate")

    assert preview.json()["code"] == "preview_timed_out", preview.json()
    assert validate.json()["code"] == "preview_timed_out", validate.json()
