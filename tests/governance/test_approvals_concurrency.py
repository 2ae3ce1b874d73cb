"""Twenty people approving one request at the same moment (threads, each with its own
PostgreSQL connection): exactly one transition and one execution."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from governance import policy
from governance.actors import Actor
from governance.approvals import approval_approve, approval_execute, registry
from governance.models import ApprovalPolicy, ApprovalRequest, AuditEvent, Door, Environment, OutboxEvent
from marketerapi.problems import ApplicationError
from tests.conftest import require_service
from tests.factories import AudienceFactory, UserFactory
from tests.governance.test_approvals import audience_fingerprint, file_request

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.usefixtures("eager_celery")]

VOTERS = 20
ACTION = "test.ship_once"


@pytest.fixture
def postgres(django_db_serialized_rollback, transactional_db):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "concurrent row locks need PostgreSQL; set DATABASE_URL")


class CountingExecutor:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs = 0

    def __call__(self, execution: registry.Execution) -> dict:
        with self.lock:
            self.runs += 1
        target = execution.target
        target.description = "shipped"
        target.save(update_fields=["description"])
        return {"run": self.runs}


@pytest.fixture
def one_approver_action(monkeypatch):
    executor = CountingExecutor()
    monkeypatch.setitem(
        policy.ACTIONS, ACTION, policy.Action(ACTION, None, "Ship the test widget once", scope="write", approval=True)
    )
    monkeypatch.setitem(
        registry._EXECUTORS, ACTION, registry.ExecutorSpec(ACTION, executor, fingerprint=audience_fingerprint)
    )
    return executor


def run_in_threads(targets) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def work(target):
        try:
            start.wait()
            target()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_twenty_concurrent_approvals_make_one_transition_and_one_execution(postgres, one_approver_action):
    production = Environment.objects.get(slug="production")
    ApprovalPolicy.objects.create(environment=production, action=ACTION, steps=[["approver"]])
    requester = UserFactory(username="c-requester", groups=["campaign_operator", "growth"])
    approvers = [UserFactory(username=f"c-approver-{i}", groups=["approver"]) for i in range(VOTERS)]
    request = file_request(requester, production, AudienceFactory(environment=production), action=ACTION)

    outcomes: list[str] = []
    lock = threading.Lock()

    def vote(user):
        def run():
            try:
                approval_approve(actor=Actor(user=user, environment=production, door=Door.API), request=request)
                result = "approved"
            except ApplicationError as exc:
                result = exc.code
            with lock:
                outcomes.append(result)

        return run

    errors = run_in_threads([vote(user) for user in approvers])

    assert not errors, errors
    assert Counter(outcomes) == {"approved": 1, "approval_closed": VOTERS - 1}
    request.refresh_from_db()
    assert request.state == "executed" and request.votes.count() == 1
    assert one_approver_action.runs == 1
    assert AuditEvent.objects.filter(action="approval.approve", outcome="allowed").count() == 1
    assert AuditEvent.objects.filter(action="approval.execute").count() == 1
    assert OutboxEvent.objects.filter(type="approval.decided", data__state="approved").count() == 1


def test_twenty_workers_handed_one_approved_request_run_it_once(postgres, one_approver_action):
    production = Environment.objects.get(slug="production")
    ApprovalPolicy.objects.create(environment=production, action=ACTION, steps=[["approver"]])
    requester = UserFactory(username="c-requester", groups=["campaign_operator", "growth"])
    request = file_request(requester, production, AudienceFactory(environment=production), action=ACTION)
    # Approved without running: the kick is replaced by the workers below.
    ApprovalRequest.objects.filter(pk=request.pk).update(state="approved")

    results: list[object] = []
    lock = threading.Lock()

    def work():
        outcome = approval_execute(request.pk)
        with lock:
            results.append(outcome.state if outcome is not None else None)

    errors = run_in_threads([work] * VOTERS)

    assert not errors, errors
    assert Counter(results) == {"executed": 1, None: VOTERS - 1}
    assert one_approver_action.runs == 1
    assert AuditEvent.objects.filter(action="approval.execute").count() == 1
