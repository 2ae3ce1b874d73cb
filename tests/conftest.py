"""Personas (one per role, plus an outsider in another team and environment) and API clients."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db.backends.signals import connection_created
from rest_framework.test import APIClient

from governance.actors import Actor
from governance.models import Door, Environment
from governance.roles import ROLE_NAMES
from tests.factories import ALL_SCOPES, ApiTokenFactory, UserFactory

PERSONAS = {
    "analyst": ["analyst", "growth"],
    "operator": ["campaign_operator", "growth"],
    "operator2": ["campaign_operator", "retention"],
    "approver": ["approver"],
    "approver2": ["approver"],
    "compliance": ["compliance_reviewer"],
    "developer": ["developer", "growth"],
    "admin": ["admin"],
    "marketing_ops": ["marketing_ops"],
    "outsider": ["campaign_operator", "other"],
    "nobody": [],
}


def require_service(name: str, reason: str) -> None:
    """Skip a test whose service is missing, or fail it when REQUIRE_SERVICES=1 (CI)."""
    if settings.REQUIRE_SERVICES or os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is required (REQUIRE_SERVICES=1) but unavailable: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


# --- the `slow` marker ----------------------------------------------------------------------
#
# `make test ARGS='-m "not slow"'` is the quick run (about two minutes); CI runs everything.
# Slow are: the browser suite (tests/e2e marks itself), property-based tests (hypothesis), tests
# that start a process (manage.py, a Celery worker, gunicorn, make, node, `python -c`) and the
# few big matrices that take seconds. The first two kinds are checked here, the third when the
# test runs: a test that is not marked slow and starts a process fails, saying so.


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False) and not item.get_closest_marker("slow")
    ]
    if unmarked:
        raise pytest.UsageError(
            "Property-based (hypothesis) tests run for seconds: mark them @pytest.mark.slow so that "
            '-m "not slow" stays quick:\n  ' + "\n  ".join(unmarked)
        )


@pytest.fixture(autouse=True)
def _processes_are_slow(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked slow may not start a process: starting one fails the test with the fix."""
    if request.node.get_closest_marker("slow"):
        return
    nodeid = request.node.nodeid

    class NotInAQuickTest(subprocess.Popen):
        def __init__(self, args: object, *rest: object, **kwargs: object) -> None:
            pytest.fail(
                f"{nodeid} starts a process ({args!r}): mark the test @pytest.mark.slow, so that "
                '`-m "not slow"` stays quick (tests/conftest.py)',
                pytrace=False,
            )

    monkeypatch.setattr(subprocess, "Popen", NotInAQuickTest)


@pytest.fixture(autouse=True)
def _own_rate_limit_counts(settings):
    """Each test counts API requests under its own rate-limit key prefix (in Redis or in
    memory), so tests never throttle each other; its keys are deleted afterwards."""
    settings.RATELIMIT_KEY_PREFIX = f"test:rl:{uuid.uuid4().hex[:12]}"
    yield
    from governance.limits.ratelimit import forget_prefix

    forget_prefix(settings.RATELIMIT_KEY_PREFIX)


@pytest.fixture(autouse=True)
def _own_sign_in_counts(monkeypatch):
    """Each test counts failed sign-ins under its own key prefix, so a test's wrong passwords
    never lock another test's user out (governance/limits/signin.py)."""
    from governance.limits import signin

    monkeypatch.setattr(signin, "PREFIX", f"test:signin:{uuid.uuid4().hex[:12]}:")


@pytest.fixture(autouse=True)
def _own_request_log():
    """Each test starts with an empty request-log buffer and leaves none behind (the rows
    are written only when a test calls buffer.flush())."""
    from governance.requestlog import buffer

    buffer.discard()
    yield
    buffer.discard()


@pytest.fixture
def sandbox(db) -> Environment:
    return Environment.objects.get(slug="sandbox")


@pytest.fixture
def pilot(db) -> Environment:
    return Environment.objects.get(slug="pilot")


@pytest.fixture
def production(db) -> Environment:
    return Environment.objects.get(slug="production")


@pytest.fixture
def persona(db) -> Callable[[str], object]:
    """persona("analyst") → a user holding that persona's role and team."""

    def make(name: str):
        return UserFactory(username=f"p-{name}", groups=PERSONAS[name])

    return make


def issue_test_token(user, environment: Environment, scopes: list[str] | None = None) -> str:
    """The Bearer secret of a new token of `user`: every scope by default, so what it may do
    is then bounded by its owner's roles."""
    return ApiTokenFactory(
        user=user, environment=environment, scopes=list(ALL_SCOPES if scopes is None else scopes)
    ).secret


@pytest.fixture
def api(db, persona, sandbox) -> Callable[..., APIClient]:
    """api("developer") → an APIClient with a Bearer token of that persona in sandbox."""

    def make(name: str, environment: Environment | None = None) -> APIClient:
        user = persona(name)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_test_token(user, environment or sandbox)}")
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def actor(db, persona, sandbox) -> Callable[..., Actor]:
    def make(name: str, environment: Environment | None = None, door: str = Door.API) -> Actor:
        return Actor(user=persona(name), environment=environment or sandbox, door=door, request_id="req_test")

    return make


assert set(ROLE_NAMES) >= {
    r for groups in PERSONAS.values() for r in groups if r not in ("growth", "retention", "other")
}


def _allow_audit_maintenance(sender, connection, **kwargs):
    """Let the suite empty the append-only audit table between tests (flush uses TRUNCATE).

    Tests of the trigger itself switch this off with SET LOCAL inside their transaction.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET marketerapi.audit_maintenance = 'on'")


connection_created.connect(_allow_audit_maintenance, dispatch_uid="tests.audit_maintenance")


@pytest.fixture
def eager_celery():
    """Run Celery tasks in-process for this test even when CELERY_BROKER_URL is set (CI):
    for tests of what a task does, not of the broker. Tests of the broker itself start a
    real worker (tests/test_celery_worker.py, tests/reliability/test_celery_dispatch.py)."""
    from marketerapi.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous
