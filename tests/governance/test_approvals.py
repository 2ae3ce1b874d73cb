"""Approval requests (PRODUCT.md §5): who may vote, dual control, rejection, cancel,
stale requests, expiry, change windows, execution and failure, and the approvals API.

A test-only action `test.ship` (target: an audience, any role may ask) stands in for the
domain actions whose services do not exist yet; its policy in production asks for an
approver and a developer or admin, like archiving a published audience.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audiences.models import Audience
from governance import policy
from governance.actors import Actor
from governance.approvals import (
    approval_approve,
    approval_cancel,
    approval_execute,
    approval_reject,
    approval_request_create,
    approvals_due,
    approvals_expire,
    errors,
    fingerprint_of,
    registry,
)
from governance.models import (
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalState,
    ApprovalVote,
    AuditEvent,
    Door,
    Environment,
    OutboxEvent,
)
from governance.tasks import approvals_expire_task, approvals_run_due_task
from marketerapi.problems import ApplicationError
from tests.conftest import issue_test_token
from tests.factories import AudienceFactory, UserFactory
from tests.refusals import denied_event, refused

# What the approved action does is tested here; the broker is tested elsewhere.
pytestmark = pytest.mark.usefixtures("eager_celery")

ACTION = "test.ship"
DUAL = [["approver"], ["developer", "admin"]]


# --- fixtures ---------------------------------------------------------------------------


class Recorder:
    """A test executor: records each run; `fail` makes it raise."""

    def __init__(self) -> None:
        self.runs: list[Any] = []
        self.fail: Exception | None = None

    def __call__(self, execution: registry.Execution) -> dict[str, Any]:
        self.runs.append(execution)
        target = execution.target
        # A write the savepoint must roll back when the executor fails.
        target.description = "shipped"
        target.save(update_fields=["description"])
        if self.fail is not None:
            raise self.fail
        return {"shipped": target.pk}


def audience_fingerprint(audience: Audience) -> str:
    return fingerprint_of(audience.name, audience.rules, audience.state)


@pytest.fixture
def executor(db, monkeypatch) -> Recorder:
    """Register `test.ship` in the policy (with a dual-control policy in production and
    pilot) and a recording executor for it."""
    recorder = Recorder()
    monkeypatch.setitem(
        policy.ACTIONS,
        ACTION,
        policy.Action(ACTION, None, "Ship the test widget", scope="write", approval=True),
    )
    monkeypatch.setitem(
        registry._EXECUTORS, ACTION, registry.ExecutorSpec(ACTION, recorder, fingerprint=audience_fingerprint)
    )
    for slug in ("pilot", "production"):
        ApprovalPolicy.objects.create(
            environment=Environment.objects.get(slug=slug), action=ACTION, steps=DUAL, description="Shipping a widget"
        )
    return recorder


@pytest.fixture
def people(db):
    """requester (operator), approver, approver2, developer, admin, admin_approver (both roles),
    compliance, analyst."""
    specs = {
        "requester": ["campaign_operator", "growth"],
        "approver": ["approver"],
        "approver2": ["approver"],
        "developer": ["developer"],
        "admin": ["admin"],
        "admin_approver": ["admin", "approver"],
        "operator_approver": ["campaign_operator", "approver", "growth"],
        "compliance": ["compliance_reviewer"],
        "analyst": ["analyst"],
    }
    return {name: UserFactory(username=f"a-{name}", groups=groups) for name, groups in specs.items()}


def act(user, environment: Environment) -> Actor:
    return Actor(user=user, environment=environment, door=Door.API, request_id="req_test")


def file_request(user, environment: Environment, target: Audience, action: str = ACTION, context=None):
    actor = act(user, environment)
    decision = policy.require(actor, action, target, context or {})
    assert decision.needs_approval, decision
    return approval_request_create(
        actor=actor,
        action=action,
        target=target,
        summary=f"Ship {target.name!r}",
        change={"context": context or {}},
        decision=decision,
        fingerprint=audience_fingerprint(target),
    )


@pytest.fixture
def filed(executor, people, production):
    audience = AudienceFactory(environment=production, name="Spring sale EU", description="test")
    return file_request(people["requester"], production, audience)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """Freeze timezone.now (a Friday evening in London, outside production's windows)."""
    frozen = Clock(datetime(2026, 3, 6, 18, 0, tzinfo=UTC))
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen


def code_of(raised: pytest.ExceptionInfo) -> str:
    return raised.value.code


# --- filing -------------------------------------------------------------------------------


def test_filing_writes_one_audit_event_and_emits_approval_requested(filed, people):
    assert (filed.state, filed.required, filed.is_stale) == ("pending", 2, False)
    assert filed.policy["steps"] == DUAL and filed.expires_at - filed.created_at == timedelta(hours=72)
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.actor_user) == (ACTION, "approval_requested", people["requester"])
    assert event.approval_refs == [{"approval_request": filed.pk, "state": "pending"}]
    outbox = OutboxEvent.objects.get(type="approval.requested")
    assert outbox.data["approval_id"] == filed.pk and outbox.data["required"] == 2


def test_an_action_without_an_executor_cannot_be_filed(monkeypatch, people, production):
    monkeypatch.setitem(policy.ACTIONS, "test.orphan", policy.Action("test.orphan", None, "Orphan", approval=True))
    ApprovalPolicy.objects.create(environment=production, action="test.orphan", steps=[["approver"]])
    actor = act(people["requester"], production)
    decision = policy.require(actor, "test.orphan")
    with pytest.raises(registry.ExecutorMissing):
        approval_request_create(
            actor=actor, action="test.orphan", target=None, summary="x", change={}, decision=decision
        )
    assert not ApprovalRequest.objects.exists()


# --- who may vote ---------------------------------------------------------------------------


def test_self_approval_is_refused_even_with_an_approver_role(executor, people, production):
    audience = AudienceFactory(environment=production)
    request = file_request(people["operator_approver"], production, audience)

    with pytest.raises(errors.SelfApproval) as raised:
        approval_approve(actor=act(people["operator_approver"], production), request=request)

    assert raised.value.status == 403 and "own request" in raised.value.detail
    denied = AuditEvent.objects.get(action="approval.approve")
    assert (denied.outcome, denied.changes["code"]) == ("denied", "self_approval")
    assert not ApprovalVote.objects.exists()


def test_two_approvals_from_one_person_are_refused(filed, people, production):
    approval_approve(actor=act(people["admin_approver"], production), request=filed)

    with pytest.raises(errors.AlreadyVoted) as raised:
        approval_approve(actor=act(people["admin_approver"], production), request=filed)

    assert raised.value.status == 409
    filed.refresh_from_db()
    assert filed.state == "pending" and filed.votes.count() == 1


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("analyst", "fill none of the open steps"),
        ("compliance", "Compliance reviewers vote on exports only"),
    ],
)
def test_the_wrong_role_is_refused(filed, people, production, who, expected):
    with pytest.raises(errors.NotEligible) as raised:
        approval_approve(actor=act(people[who], production), request=filed)
    assert raised.value.status == 403 and expected in raised.value.detail
    assert "an approver and a developer or admin" in raised.value.detail


def test_a_second_approver_cannot_fill_the_developer_or_admin_step(filed, people, production):
    approval_approve(actor=act(people["approver"], production), request=filed)

    with pytest.raises(errors.NotEligible) as raised:
        approval_approve(actor=act(people["approver2"], production), request=filed)

    assert "still needs a developer or admin" in raised.value.detail
    assert "already filled" in raised.value.detail


def test_compliance_reviewers_approve_exports(monkeypatch, people, production):
    action = "export.test_pii"
    monkeypatch.setitem(policy.ACTIONS, action, policy.Action(action, None, "Export test", approval=True))
    monkeypatch.setitem(registry._EXECUTORS, action, registry.ExecutorSpec(action, lambda e: {"ok": True}))
    ApprovalPolicy.objects.create(environment=production, action=action, steps=[["compliance_reviewer"]])
    request = file_request(people["requester"], production, AudienceFactory(environment=production), action=action)

    with pytest.raises(errors.NotEligible):
        approval_approve(actor=act(people["admin"], production), request=request)
    outcome = approval_approve(actor=act(people["compliance"], production), request=request)

    assert outcome.request.state == "approved"


def test_dual_control_needs_two_distinct_people_and_then_runs_as_the_requester(
    filed, people, production, executor, django_capture_on_commit_callbacks
):
    # given: one approver's vote
    first = approval_approve(actor=act(people["approver"], production), request=filed, comment="Looks right")
    assert (first.request.state, first.transitioned) == ("pending", False)
    assert "Approved (1 of 2). Still needed: a developer or admin." == first.message
    assert executor.runs == []

    # when: a developer gives the second
    with django_capture_on_commit_callbacks(execute=True):
        second = approval_approve(actor=act(people["developer"], production), request=filed)

    # then: approved, and run once with the requester as actor through the task door
    assert second.transitioned and "runs now" in second.message
    filed.refresh_from_db()
    assert filed.state == "executed" and filed.result == {"shipped": int(filed.target_id)}
    [run] = executor.runs
    assert run.actor.user == people["requester"] and run.actor.door == "task"
    assert run.context == {"approved_request": filed.pk}
    assert policy.decide(run.actor, ACTION, run.target, run.context).allowed
    assert sorted((r["voter"], r["role"]) for r in run.approval_refs) == [
        ("a-approver", "approver"),
        ("a-developer", "developer"),
    ]
    executed = AuditEvent.objects.get(action="approval.execute")
    assert (executed.outcome, executed.door, executed.actor_user) == ("allowed", "task", people["requester"])
    assert len(executed.approval_refs) == 2
    decided = list(
        OutboxEvent.objects.filter(type="approval.decided").order_by("id").values_list("data__step", "data__state")
    )
    assert decided == [("approve", "pending"), ("approve", "approved"), ("execute", "executed")]


def test_a_person_with_several_roles_fills_one_step_whatever_the_order(filed, people, production):
    # The admin-and-approver votes first and is matched to the approver step...
    approval_approve(actor=act(people["admin_approver"], production), request=filed)
    # ...an approver voting second still completes it: the first moves to the admin step.
    outcome = approval_approve(actor=act(people["approver"], production), request=filed)

    assert outcome.request.state == "approved"
    roles = dict(filed.votes.values_list("voter__username", "role"))
    assert roles == {"a-admin_approver": "admin", "a-approver": "approver"}


# --- reject and cancel ------------------------------------------------------------------------


def test_rejection_needs_a_comment_and_ends_the_request(filed, people, production):
    with pytest.raises(errors.CommentRequired) as raised:
        approval_reject(actor=act(people["approver"], production), request=filed, comment="  ")
    assert raised.value.status == 422 and raised.value.hint

    outcome = approval_reject(actor=act(people["approver"], production), request=filed, comment="Too wide")

    assert outcome.request.state == "rejected" and "closed" in outcome.message
    with pytest.raises(errors.ApprovalClosed):
        approval_approve(actor=act(people["developer"], production), request=filed)
    assert AuditEvent.objects.filter(action="approval.reject", outcome="allowed").count() == 1
    assert OutboxEvent.objects.filter(type="approval.decided", data__state="rejected").count() == 1


def test_only_the_requester_may_cancel(filed, people, production):
    with pytest.raises(errors.NotRequester):
        approval_cancel(actor=act(people["admin"], production), request=filed)
    assert AuditEvent.objects.filter(action="approval.cancel", outcome="denied").count() == 1

    cancelled = approval_cancel(actor=act(people["requester"], production), request=filed)

    assert cancelled.state == "cancelled"
    with pytest.raises(errors.ApprovalClosed):
        approval_cancel(actor=act(people["requester"], production), request=filed)


# --- stale requests ------------------------------------------------------------------------------


def test_a_target_changed_while_pending_cannot_be_approved(filed, people, production):
    """Issue 12: the approver's vote used to approve the edited target the request did not
    show. Now it is refused (409 `approval_stale`, audited) and the request says so."""
    approval_approve(actor=act(people["approver"], production), request=filed)
    audience = Audience.objects.get(pk=filed.target_id)
    audience.rules = {"all": [{"attr": "region", "op": "in", "value": ["EU", "UK"]}]}
    audience.save()

    with pytest.raises(errors.ApprovalStale) as raised:
        approval_approve(actor=act(people["admin"], production), request=filed)

    assert raised.value.status == 409 and "request it again" in raised.value.hint
    filed.refresh_from_db()
    assert filed.state == "pending" and filed.is_stale
    denied = AuditEvent.objects.get(action="approval.approve", outcome="denied")
    assert denied.changes["code"] == "approval_stale"
    # nothing changes that: the earlier approver cannot approve the new version either
    with pytest.raises(errors.ApprovalStale):
        approval_approve(actor=act(people["approver2"], production), request=filed)
    # a rejection still closes it
    assert approval_reject(actor=act(people["admin"], production), request=filed, comment="stale").request.state == (
        "rejected"
    )


def test_requesting_again_supersedes_the_stale_request(filed, people, production):
    from governance.approvals import request_or_run

    audience = Audience.objects.get(pk=filed.target_id)
    audience.rules = {"all": [{"attr": "region", "op": "in", "value": ["EU", "UK"]}]}
    audience.save()
    actor = act(people["requester"], production)

    outcome = request_or_run(
        actor=actor,
        action=ACTION,
        target=audience,
        decision=policy.require(actor, ACTION, audience, {}),
        summary="Ship again",
        change={"context": {}},
        fingerprint=audience_fingerprint(audience),
        run=lambda: None,
    )

    new = outcome.approval
    filed.refresh_from_db()
    assert filed.state == "cancelled" and filed.is_stale and filed.result["superseded_by"] == new.pk
    assert new.state == "pending" and new.target_fingerprint == audience_fingerprint(audience)
    event = AuditEvent.objects.filter(action=ACTION, outcome="approval_requested").order_by("-id").first()
    assert event.changes["supersedes"] == filed.pk
    assert OutboxEvent.objects.filter(type="approval.decided", data__step="supersede").count() == 1
    # an unchanged target: a second request is still refused while the first is open
    with pytest.raises(errors.ApprovalPending):
        request_or_run(
            actor=actor,
            action=ACTION,
            target=audience,
            decision=policy.require(actor, ACTION, audience, {}),
            summary="Ship again",
            change={"context": {}},
            fingerprint=audience_fingerprint(audience),
            run=lambda: None,
        )


def test_a_target_changed_after_approval_is_not_run(filed, people, production, executor):
    approval_approve(actor=act(people["approver"], production), request=filed)
    approval_approve(actor=act(people["admin"], production), request=filed)
    Audience.objects.filter(pk=filed.target_id).update(name="Something else")

    request = approval_execute(filed.pk)

    assert request.state == "failed" and request.result["error"]["code"] == "target_changed"
    assert executor.runs == []


# --- expiry ---------------------------------------------------------------------------------------


def test_a_request_expires_after_72_hours(filed, people, production):
    assert approvals_expire(now=filed.created_at + timedelta(hours=71, minutes=59)) == 0

    assert approvals_expire(now=filed.created_at + timedelta(hours=72)) == 1

    filed.refresh_from_db()
    assert filed.state == "expired"
    event = AuditEvent.objects.get(action="approval.expire")
    assert (event.door, event.actor_user) == ("task", None)
    assert OutboxEvent.objects.filter(type="approval.decided", data__step="expire").count() == 1
    with pytest.raises(errors.ApprovalClosed):
        approval_approve(actor=act(people["approver"], production), request=filed)


def test_a_vote_after_72_hours_expires_the_request(filed, people, production, clock):
    clock.now = filed.expires_at + timedelta(seconds=1)

    with pytest.raises(errors.ApprovalExpired):
        approval_approve(actor=act(people["approver"], production), request=filed)

    filed.refresh_from_db()
    assert filed.state == "expired" and not filed.votes.exists()
    assert approvals_expire_task() == 0


# --- change windows -----------------------------------------------------------------------------------


def test_a_publish_outside_the_change_window_waits_for_the_next_opening(
    clock, monkeypatch, people, production, django_capture_on_commit_callbacks
):
    # given: production publishes need one approver above 50,000 reach; a test executor
    recorder = Recorder()
    monkeypatch.setitem(
        registry._EXECUTORS,
        "audience.publish",
        registry.ExecutorSpec("audience.publish", recorder, fingerprint=audience_fingerprint),
    )
    audience = AudienceFactory(environment=production)
    request = file_request(people["requester"], production, audience, "audience.publish", {"reach": 60_000})

    # when: approved on a Friday at 18:00 London time
    with django_capture_on_commit_callbacks(execute=True):
        outcome = approval_approve(actor=act(people["approver"], production), request=request)

    # then: approved and scheduled for Monday 09:00, said in the response and the summary
    monday = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # GMT in March before the clocks change
    assert outcome.request.state == "approved" and outcome.request.scheduled_for == monday
    assert "Mon 9 Mar 2026 09:00 Europe/London" in outcome.message
    assert "scheduled for Mon 9 Mar 2026 09:00 Europe/London" in outcome.request.summary
    assert recorder.runs == []
    assert approvals_due(now=clock.now + timedelta(hours=60)) == []

    # when the window opens, the beat task runs it
    clock.now = monday + timedelta(minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert approvals_run_due_task() == 1

    request.refresh_from_db()
    assert request.state == "executed" and len(recorder.runs) == 1
    assert recorder.runs[0].context == {"reach": 60_000, "approved_request": request.pk}


def test_a_request_approved_inside_the_window_runs_at_once(clock, monkeypatch, people, production):
    monkeypatch.setitem(registry._EXECUTORS, "audience.publish", registry.ExecutorSpec("audience.publish", Recorder()))
    clock.now = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday morning
    request = file_request(
        people["requester"],
        production,
        AudienceFactory(environment=production),
        "audience.publish",
        {"reach": 60_000},
    )

    outcome = approval_approve(actor=act(people["approver"], production), request=request)

    assert outcome.request.scheduled_for is None and "runs now" in outcome.message


def test_a_late_pickup_outside_the_window_is_rescheduled_not_run(clock, monkeypatch, people, production):
    recorder = Recorder()
    monkeypatch.setitem(registry._EXECUTORS, "audience.publish", registry.ExecutorSpec("audience.publish", recorder))
    clock.now = datetime(2026, 3, 5, 16, 59, tzinfo=UTC)  # Thursday, a minute before closing
    request = file_request(
        people["requester"],
        production,
        AudienceFactory(environment=production),
        "audience.publish",
        {"reach": 60_000},
    )
    approval_approve(actor=act(people["approver"], production), request=request)  # kick not run here

    clock.now = datetime(2026, 3, 5, 17, 30, tzinfo=UTC)  # the worker picks it up after closing
    assert approvals_due() == [request.pk]
    rescheduled = approval_execute(request.pk)

    assert rescheduled.state == "approved" and rescheduled.scheduled_for == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    assert recorder.runs == [] and rescheduled.executed_at is None


# --- execution ----------------------------------------------------------------------------------------


def _approve_fully(request, people, environment):
    approval_approve(actor=act(people["approver"], environment), request=request)
    approval_approve(actor=act(people["admin"], environment), request=request)


def test_an_executor_that_raises_leaves_the_request_failed_with_a_hint(filed, people, production, executor):
    executor.fail = ApplicationError("The audience has no live version.", hint="Publish it first.", code="no_live")
    _approve_fully(filed, people, production)

    request = approval_execute(filed.pk)

    assert request.state == "failed"
    assert request.result["error"] == {
        "code": "no_live",
        "message": "The audience has no live version.",
        "hint": "Publish it first.",
    }
    # the executor's own writes were rolled back
    assert Audience.objects.get(pk=filed.target_id).description == "test"
    event = AuditEvent.objects.get(action="approval.execute")
    assert event.outcome == "failed" and event.reasons == ["The audience has no live version."]


def test_an_unexpected_error_is_failed_with_a_generic_hint(filed, people, production, executor):
    executor.fail = RuntimeError("vendor timeout")
    _approve_fully(filed, people, production)

    request = approval_execute(filed.pk)

    error = request.result["error"]
    assert (error["code"], error["message"]) == ("execution_failed", "RuntimeError: vendor timeout")
    assert "file the action again" in error["hint"]


def test_execution_is_claimed_once(filed, people, production, executor):
    _approve_fully(filed, people, production)

    first, second = approval_execute(filed.pk), approval_execute(filed.pk)

    assert first.state == "executed" and second is None and len(executor.runs) == 1
    with pytest.raises(errors.ApprovalClosed):
        approval_cancel(actor=act(people["requester"], production), request=filed)


def test_a_lost_kick_is_picked_up_by_the_sweep(filed, people, production, executor):
    _approve_fully(filed, people, production)  # on_commit callbacks are not run here: the kick is "lost"
    filed.refresh_from_db()

    assert approvals_due(now=filed.decided_at + timedelta(seconds=30)) == []
    assert approvals_due(now=filed.decided_at + timedelta(minutes=2)) == [filed.pk]


def test_an_approved_request_waiting_for_a_window_may_be_cancelled(clock, monkeypatch, people, production):
    monkeypatch.setitem(registry._EXECUTORS, "audience.publish", registry.ExecutorSpec("audience.publish", Recorder()))
    request = file_request(
        people["requester"],
        production,
        AudienceFactory(environment=production),
        "audience.publish",
        {"reach": 60_000},
    )
    approval_approve(actor=act(people["approver"], production), request=request)

    assert approval_cancel(actor=act(people["requester"], production), request=request).state == "cancelled"
    assert approval_execute(request.pk, now=datetime(2026, 3, 9, 10, 0, tzinfo=UTC)) is None


# --- API ----------------------------------------------------------------------------------------------


def _client(api, user, environment):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_test_token(user, environment)}")
    return client


def test_api_detail_shows_votes_steps_policy_and_what_you_may_do(filed, people, production, api):
    approval_approve(actor=act(people["approver"], production), request=filed, comment="ok")
    client = _client(api, people["developer"], production)

    body = client.get(f"/api/v1/approvals/{filed.pk}").json()

    assert (body["state"], body["required"], body["received"], body["is_stale"]) == ("pending", 2, 1, False)
    assert body["steps"] == [
        {"roles": ["approver"], "filled_by": "a-approver"},
        {"roles": ["developer", "admin"], "filled_by": None},
    ]
    assert body["votes"][0] | {"created_at": None} == {
        "voter": "a-approver",
        "decision": "approve",
        "role": "approver",
        "comment": "ok",
        "counts": True,
        "created_at": None,
    }
    assert body["policy"]["steps"] == DUAL and body["target"]["label"] == "Spring sale EU"
    assert body["you"] == {"may_vote": True, "may_cancel": False, "reason": ""}
    assert body["summary"] == "Ship 'Spring sale EU'"


def test_api_detail_flags_a_target_changed_since_the_last_vote(filed, people, production, api):
    Audience.objects.filter(pk=filed.target_id).update(state="archived")
    body = _client(api, people["approver"], production).get(f"/api/v1/approvals/{filed.pk}/").json()
    assert body["is_stale"] is True and "changed" in body["stale_reason"]


def test_api_another_environment_is_a_404(filed, people, pilot, api):
    client = _client(api, people["approver"], pilot)
    response = client.get(f"/api/v1/approvals/{filed.pk}")
    assert response.status_code == 404 and response.json()["code"] == "approval_not_found"
    refused(client.post(f"/api/v1/approvals/{filed.pk}/approve", {}, format="json"), 404, "approval_not_found")


def test_api_approve_reject_and_cancel(filed, people, production, api, django_capture_on_commit_callbacks):
    own = _client(api, people["requester"], production).post(f"/api/v1/approvals/{filed.pk}/approve")
    assert own.status_code == 403 and own.json()["code"] == "self_approval" and own.json()["hint"]

    wrong = _client(api, people["analyst"], production).post(f"/api/v1/approvals/{filed.pk}/approve")
    assert wrong.status_code == 403 and wrong.json()["code"] == "not_eligible"

    approver = _client(api, people["approver"], production)
    ok = approver.post(f"/api/v1/approvals/{filed.pk}/approve", {"comment": "fine"}, format="json")
    assert ok.status_code == 200, ok.json()
    assert ok.json()["approval"]["received"] == 1 and "Still needed" in ok.json()["message"]

    twice = approver.post(f"/api/v1/approvals/{filed.pk}/approve")
    assert twice.status_code == 409 and twice.json()["code"] == "already_voted"

    admin = _client(api, people["admin"], production)
    no_comment = admin.post(f"/api/v1/approvals/{filed.pk}/reject", {}, format="json")
    assert no_comment.status_code == 422 and no_comment.json()["code"] == "comment_required"
    rejected = admin.post(f"/api/v1/approvals/{filed.pk}/reject", {"comment": "Not now"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["approval"]["state"] == "rejected"

    closed = _client(api, people["requester"], production).post(f"/api/v1/approvals/{filed.pk}/cancel")
    assert closed.status_code == 409 and closed.json()["code"] == "approval_closed"


def test_api_cancel_by_someone_else_is_refused(filed, people, production, api):
    response = _client(api, people["approver"], production).post(f"/api/v1/approvals/{filed.pk}/cancel")
    assert response.status_code == 403 and response.json()["code"] == "not_requester"
    ok = _client(api, people["requester"], production).post(f"/api/v1/approvals/{filed.pk}/cancel/")
    assert ok.status_code == 200 and ok.json()["approval"]["state"] == "cancelled"


def test_api_a_read_only_token_cannot_vote(filed, people, production, api):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_test_token(people['approver'], production, ['read'])}")
    response = client.post(f"/api/v1/approvals/{filed.pk}/approve")
    assert "'write' scope" in refused(response, 403, "permission_denied")["detail"]
    denied_event(people["approver"], "approval.vote", environment=production)


def test_api_list_filters(executor, people, production, api):
    first = file_request(people["requester"], production, AudienceFactory(environment=production, name="A"))
    second = file_request(people["operator_approver"], production, AudienceFactory(environment=production, name="B"))
    approval_approve(actor=act(people["approver"], production), request=second)
    third = file_request(people["requester"], production, AudienceFactory(environment=production, name="C"))
    approval_reject(actor=act(people["approver"], production), request=third, comment="no")

    def ids(client, **params):
        response = client.get("/api/v1/approvals/", params)
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["results"]]

    requester = _client(api, people["requester"], production)
    approver = _client(api, people["approver"], production)
    developer = _client(api, people["developer"], production)
    assert ids(requester) == [third.pk, second.pk, first.pk]
    assert ids(requester, state="pending") == [second.pk, first.pk]
    assert ids(requester, mine="true") == [third.pk, first.pk]
    # the approver voted on the second (and on the third): only the first waits for them
    assert ids(approver, waiting_for_me="true") == [first.pk]
    assert ids(developer, waiting_for_me="true") == [second.pk, first.pk]
    assert ids(_client(api, people["operator_approver"], production), waiting_for_me="true") == [first.pk]

    bad = requester.get("/api/v1/approvals/", {"state": "done"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_filter"
    unknown = requester.get("/api/v1/approvals/", {"stat": "pending"})
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_query_parameter"


def test_api_list_takes_the_same_queries_whatever_the_number_of_requests(executor, people, production, api):
    client = _client(api, people["developer"], production)
    first = file_request(people["requester"], production, AudienceFactory(environment=production, name="A"))
    approval_approve(actor=act(people["approver"], production), request=first)
    client.get("/api/v1/approvals/")  # warm up: last_used_at, permission cache

    def count(**params) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/approvals/", params).status_code == 200
        return len(captured.captured_queries)

    few, few_waiting = count(), count(waiting_for_me="true")
    for index in range(6):
        request = file_request(
            people["requester"], production, AudienceFactory(environment=production, name=f"More {index}")
        )
        approval_approve(actor=act(people["approver"], production), request=request)

    assert count() == few
    assert count(waiting_for_me="true") == few_waiting


# --- request_or_run: the one way a service files a request or runs now --------------------


def test_request_or_run_runs_now_when_the_policy_allows(actor):
    from governance.approvals import request_or_run

    ran = []
    decision = policy.Decision(policy.ALLOW, "role_permission")
    outcome = request_or_run(
        actor=actor("admin"),
        action="audience.archive",
        target=("audiences.audience", 1, "Lapsed"),
        decision=decision,
        summary="Archive",
        change={},
        run=lambda: ran.append(1) or "done",
    )
    assert (outcome.ran, outcome.result, outcome.approval, ran) == (True, "done", None, [1])


def test_request_or_run_files_one_request_and_refuses_a_second_while_it_is_open(actor, production):
    from governance.approvals import ApprovalPending, request_or_run

    requester = actor("operator", production)
    steps = [["approver"]]
    decision = policy.Decision(policy.NEEDS_APPROVAL, "approval_policy", ["needs 1"], approver_roles=steps)
    target = ("audiences.audience", 7, "Lapsed")
    kwargs = dict(actor=requester, action="audience.archive", target=target, decision=decision, change={})
    outcome = request_or_run(**kwargs, summary="Archive 'Lapsed'", run=lambda: pytest.fail("must not run"))

    assert outcome.approval is not None and not outcome.ran
    assert outcome.approval.state == ApprovalState.PENDING and outcome.approval.summary == "Archive 'Lapsed'"
    assert AuditEvent.objects.filter(action="audience.archive", outcome="approval_requested").count() == 1
    assert OutboxEvent.objects.filter(type="approval.requested").count() == 1
    with pytest.raises(ApprovalPending) as raised:
        request_or_run(**kwargs, summary="again", run=lambda: pytest.fail("must not run"))
    assert raised.value.code == "approval_pending"
    assert raised.value.extra["approval_url"] == f"/api/v1/approvals/{outcome.approval.pk}"
    assert ApprovalRequest.objects.count() == 1
