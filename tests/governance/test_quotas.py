"""Quotas: which policy applies, periods in UTC, atomic counting of accepted work only,
the 80 % warning, and GET /me/quotas (governance/limits/quotas.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.actors import Actor
from governance.limits import quotas, selectors
from governance.limits.errors import QuotaExceeded
from governance.limits.quotas import period_bounds
from governance.limits.services import OutsideTransaction, quota_consume
from governance.models import ApiToken, QuotaPolicy, QuotaUsage
from tests.conftest import require_service


def policy(name: str = "test-export", limit: int = 3, period: str = "month", **who) -> QuotaPolicy:
    return QuotaPolicy.objects.create(
        name=name, action="export.create", description="Test", period=period, limit=limit, **who
    )


def consume(actor: Actor, name: str, amount: int = 1):
    with transaction.atomic():
        return quota_consume(actor, name, amount)


# --- the defaults and which policy applies -------------------------------------------


def test_the_default_quotas_are_seeded(actor):
    statuses = {s.name: s for s in selectors.quota_statuses(actor("analyst"))}

    assert {name: (s.limit, s.period, s.source) for name, s in statuses.items()} == {
        "export-masked": (50, "month", "default"),
        "export-pii": (10, "month", "default"),
        "publish": (100, "day", "default"),
    }
    assert statuses["publish"].subject.startswith("user:")


def test_token_beats_user_beats_role_beats_default(persona, sandbox):
    user = persona("developer")
    token = ApiToken.objects.create(
        environment=sandbox, user=user, name="t", prefix="mk_sandbox_x", key_hash="h" * 64, scopes=["read"]
    )
    session = Actor(user=user, environment=sandbox)
    through_token = Actor(user=user, environment=sandbox, token=token)
    policy("q", 1)
    assert quotas.resolve_policy(session, "q").limit == 1

    policy("q", 2, role="developer")
    policy("q", 9, role="analyst")  # not one of this user's roles
    assert quotas.resolve_policy(session, "q").limit == 2

    policy("q", 3, user=user)
    assert quotas.resolve_policy(session, "q").limit == 3

    policy("q", 4, token=token)
    assert quotas.resolve_policy(session, "q").limit == 3
    assert quotas.resolve_policy(through_token, "q").limit == 4


def test_several_roles_get_the_largest_role_quota_and_one_environment_beats_all(persona, sandbox, pilot):
    user = persona("developer")
    user.groups.add(*type(user.groups.first()).objects.filter(name="analyst"))
    person = Actor(user=user, environment=sandbox, _roles=["analyst", "developer"])
    policy("q", 5, role="analyst")
    policy("q", 7, role="developer")
    assert quotas.resolve_policy(person, "q").limit == 7

    policy("q", 2, role="analyst", environment=sandbox)
    policy("q", 99, role="developer", environment=pilot)
    assert quotas.resolve_policy(person, "q").limit == 2


def test_inactive_policies_and_system_actors_have_no_quota(actor, sandbox):
    policy("q", 1, is_active=False)

    assert quotas.resolve_policy(actor("analyst"), "q") is None
    assert consume(Actor.system(sandbox), "publish") is None


# --- periods ---------------------------------------------------------------------------


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("day", utc(2026, 3, 4, 23, 59), utc(2026, 3, 4), utc(2026, 3, 5)),
        ("month", utc(2026, 3, 31, 12), utc(2026, 3, 1), utc(2026, 4, 1)),
        ("month", utc(2026, 12, 9), utc(2026, 12, 1), utc(2027, 1, 1)),
    ],
)
def test_periods_are_utc_days_and_calendar_months(period, now, start, end):
    assert period_bounds(period, now) == (start, end)


def test_period_boundaries_use_utc_whatever_the_offset_of_now():
    late_in_new_york = datetime(2026, 3, 31, 22, 0, tzinfo=dt_timezone(timedelta(hours=-4)))  # 02:00 UTC, April 1st

    assert period_bounds("month", late_in_new_york)[0] == utc(2026, 4, 1)


def test_a_new_period_starts_from_zero(actor, monkeypatch):
    person = actor("analyst")
    policy("q", 1, period="day")
    monkeypatch.setattr(timezone, "now", lambda: utc(2026, 3, 4, 10))
    consume(person, "q")
    with pytest.raises(QuotaExceeded):
        consume(person, "q")

    monkeypatch.setattr(timezone, "now", lambda: utc(2026, 3, 5, 0, 0, 1))
    status = consume(person, "q")

    assert status.used == 1 and status.resets_at == utc(2026, 3, 6)
    assert QuotaUsage.objects.filter(quota="q").count() == 2


# --- counting ------------------------------------------------------------------------------


def test_consume_counts_and_refuses_past_the_limit_with_the_reset_time(actor):
    person = actor("analyst")
    policy("q", 3)

    statuses = [consume(person, "q") for _ in range(3)]
    with pytest.raises(QuotaExceeded) as refused:
        consume(person, "q")

    assert [s.used for s in statuses] == [1, 2, 3] and statuses[-1].remaining == 0
    error = refused.value
    assert error.status == 429 and error.code == "quota_exceeded"
    resets = statuses[-1].resets_at
    assert f"{resets:%Y-%m-%d %H:%M} UTC" in error.hint and "GET /api/v1/me/quotas" in error.hint
    problem = error.as_problem()
    assert problem["quota"] == "q" and problem["limit"] == 3 and problem["used"] == 3
    assert problem["resets_at"] == resets.isoformat().replace("+00:00", "Z")
    assert QuotaUsage.objects.get(quota="q").used == 3


def test_an_amount_that_does_not_fit_consumes_nothing(actor):
    person = actor("analyst")
    policy("q", 5)
    consume(person, "q", 3)

    with pytest.raises(QuotaExceeded, match="2 left, 3 asked"):
        consume(person, "q", 3)

    assert consume(person, "q", 2).used == 5


def test_a_rolled_back_action_consumes_nothing(actor):
    person = actor("analyst")
    policy("q", 3)

    with pytest.raises(RuntimeError), transaction.atomic():
        quota_consume(person, "q")
        raise RuntimeError("the export failed after counting")

    assert selectors.quota_status(person, "q").used == 0


def test_consume_outside_a_transaction_is_refused(django_db_serialized_rollback, transactional_db, persona, sandbox):
    person = Actor(user=persona("analyst"), environment=sandbox)

    with pytest.raises(OutsideTransaction):
        quota_consume(person, "publish")


def test_quota_check_refuses_early_without_consuming(actor):
    person = actor("analyst")
    policy("q", 2)
    consume(person, "q", 2)

    with pytest.raises(QuotaExceeded):
        selectors.quota_check(person, "q")
    assert selectors.quota_check(actor("approver"), "q").used == 0
    assert QuotaUsage.objects.get(quota="q").used == 2


def test_use_is_counted_per_user_across_tokens_unless_a_token_has_its_own_quota(persona, sandbox):
    user = persona("developer")
    tokens = [
        ApiToken.objects.create(
            environment=sandbox, user=user, name=f"t{i}", prefix=f"p{i}", key_hash=str(i) * 64, scopes=["read"]
        )
        for i in range(2)
    ]
    policy("q", 10)
    consume(Actor(user=user, environment=sandbox, token=tokens[0]), "q")
    consume(Actor(user=user, environment=sandbox), "q")
    assert consume(Actor(user=user, environment=sandbox, token=tokens[1]), "q").used == 3

    policy("q", 1, token=tokens[1])
    own = consume(Actor(user=user, environment=sandbox, token=tokens[1]), "q")

    assert own.used == 1 and own.subject == f"token:{tokens[1].pk}"
    assert selectors.quota_status(Actor(user=user, environment=sandbox), "q").used == 3


def test_an_environment_policy_counts_that_environment_apart(persona, sandbox, pilot):
    user = persona("analyst")
    policy("q", 2, environment=pilot)
    policy("q", 5)

    consume(Actor(user=user, environment=pilot), "q")
    in_sandbox = consume(Actor(user=user, environment=sandbox), "q")

    assert in_sandbox.used == 1 and in_sandbox.limit == 5
    assert selectors.quota_status(Actor(user=user, environment=pilot), "q").used == 1


# --- the 80 % warning --------------------------------------------------------------------


def test_the_warning_starts_at_80_percent(actor):
    person = actor("analyst")
    policy("q", 10)

    statuses = [consume(person, "q") for _ in range(8)]

    assert all(s.warning() is None for s in statuses[:7])
    warning = statuses[7].warning()
    assert warning["name"] == "q" and (warning["used"], warning["limit"], warning["percent"]) == (8, 10, 80.0)
    assert warning["resets_at"].endswith("Z") and "resets" in warning["message"]


def test_with_quota_warning_adds_the_fullest_quota_to_a_response_body(actor):
    person = actor("analyst")
    policy("a", 10)
    policy("b", 5)
    for _ in range(8):
        consume(person, "a")
    low = consume(person, "b")
    for _ in range(3):
        consume(person, "b")
    full = selectors.quota_status(person, "b")

    assert quotas.with_quota_warning({"id": 1}, low) == {"id": 1}
    assert quotas.with_quota_warning({"id": 1}, None) == {"id": 1}
    body = quotas.with_quota_warning({"id": 1}, selectors.quota_status(person, "a"), full)
    assert body["quota_warning"]["name"] == "a" and body["quota_warning"]["percent"] == 80.0
    assert quotas.with_quota_warning({}, full)["quota_warning"]["percent"] == 80.0


# --- GET /me/quotas -----------------------------------------------------------------------------


def test_me_quotas_lists_each_quota_with_its_use(api):
    client = api("analyst")
    person = Actor(user=client.user, environment=ApiToken.objects.get(user=client.user).environment)
    for _ in range(41):
        consume(person, "export-masked")

    response = client.get("/api/v1/me/quotas")

    assert response.status_code == 200
    by_name = {q["name"]: q for q in response.json()["results"]}
    assert list(by_name) == ["export-masked", "export-pii", "publish"]
    masked = by_name["export-masked"]
    _, end = period_bounds("month")
    assert masked == {
        "name": "export-masked",
        "description": "Masked exports per user",
        "limit": 50,
        "used": 41,
        "remaining": 9,
        "period": "month",
        "resets_at": end.isoformat().replace("+00:00", "Z"),
        "percent": 82.0,
        "warning": True,
    }
    assert by_name["publish"]["used"] == 0 and by_name["publish"]["warning"] is False


def test_me_quotas_needs_authentication(db, client):
    response = client.get("/api/v1/me/quotas")

    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_me_quotas_answers_in_a_fixed_number_of_queries(api):
    client = api("developer")
    client.get("/api/v1/me/quotas")  # warm: token last use, cached roles
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/v1/me/quotas").status_code == 200

    person = Actor(user=client.user, environment=ApiToken.objects.get(user=client.user).environment)
    for index in range(6):
        policy(f"extra-{index}", 10, role="developer" if index % 2 else "")
        consume(person, f"extra-{index}")
    consume(person, "publish")
    with CaptureQueriesContext(connection) as many:
        response = client.get("/api/v1/me/quotas")

    assert len(response.json()["results"]) == 9
    assert len(many.captured_queries) == len(few.captured_queries) <= 4, [q["sql"] for q in many.captured_queries]


# --- concurrency (PostgreSQL) ----------------------------------------------------------------------


@pytest.fixture
def postgres(django_db_serialized_rollback, transactional_db):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "row locks and concurrent transactions need PostgreSQL; set DATABASE_URL")


@pytest.mark.services
def test_n_threads_consuming_a_quota_of_limit_l_exactly_l_succeed(postgres, persona, sandbox):
    threads_count, limit = 24, 7
    user = persona("analyst")
    policy("race", limit)
    person = Actor(user=user, environment=sandbox, _roles=["analyst"])
    barrier = threading.Barrier(threads_count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        from django.db import connection as own

        try:
            barrier.wait()
            with transaction.atomic():
                quota_consume(person, "race")
            outcome = "ok"
        except QuotaExceeded:
            outcome = "refused"
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            outcome = repr(exc)
        finally:
            own.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(set(outcomes)) == ["ok", "refused"], outcomes
    assert outcomes.count("ok") == limit
    assert QuotaUsage.objects.get(quota="race").used == limit
