"""Publish and rollback ask the policy engine once, and return the one ActionOutcome.

The reach the approval policy reads is computed only when the engine reads it — after
roles, scopes and object permissions — so a caller who may not publish never makes the
database evaluate the audience, and the one answer is also the one audited.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.models import AudienceVersion
from audiences.publishing import services as publish
from governance import policy
from governance.approvals import ActionOutcome
from governance.models import ApprovalPolicy, AuditEvent
from governance.policy import engine
from tests.audiences.publish_support import fresh, people, publish_now
from tests.factories import AudienceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def decisions(monkeypatch):
    """Every action the policy engine is asked about, in order."""
    asked: list[str] = []
    decide = engine.decide

    def counting(actor, action, target=None, context=None):
        asked.append(action)
        return decide(actor, action, target, context)

    monkeypatch.setattr(engine, "decide", counting)
    return asked


def _profile_queries(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "audiences_profile" in q["sql"]]


def test_a_publish_that_runs_asks_the_policy_once(actor, sandbox, decisions):
    people(sandbox, "eu", 2)

    outcome = publish.audience_publish(actor=actor("operator"), audience=AudienceFactory(environment=sandbox))

    assert isinstance(outcome, ActionOutcome) and outcome.ran and outcome.approval is None
    assert outcome.result is not None and outcome.result.version.number == 1
    assert decisions.count("audience.publish") == 1


def test_a_publish_held_for_approval_asks_once_and_files_the_request(actor, pilot, decisions):
    ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").update(threshold=1)
    people(pilot, "pilot", 2)
    target = AudienceFactory(environment=pilot)

    outcome = publish.audience_publish(actor=actor("operator", pilot), audience=target)

    assert not outcome.ran and outcome.result is None and outcome.approval is not None
    assert outcome.approval.change["context"] == {"reach": 2}
    assert decisions.count("audience.publish") == 1
    assert not AudienceVersion.objects.filter(audience=target).exists()
    filed = AuditEvent.objects.get(action="audience.publish")
    assert filed.outcome == "approval_requested"


def test_below_the_threshold_the_reach_is_still_recorded(actor, pilot, decisions):
    people(pilot, "pilot", 3)

    outcome = publish.audience_publish(actor=actor("operator", pilot), audience=AudienceFactory(environment=pilot))

    assert outcome.ran and decisions.count("audience.publish") == 1
    assert AuditEvent.objects.get(action="audience.publish").changes["reach_at_request"] == 3


def test_a_caller_who_may_not_publish_never_makes_the_database_evaluate_the_audience(actor, pilot, decisions):
    ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").update(threshold=1)
    people(pilot, "pilot", 2)
    target = AudienceFactory(environment=pilot)

    with CaptureQueriesContext(connection) as captured, pytest.raises(policy.PolicyDenied) as refused:
        publish.audience_publish(actor=actor("analyst", pilot), audience=target)

    assert refused.value.code == "permission_denied"
    assert _profile_queries(captured) == []
    assert decisions.count("audience.publish") == 1
    denied = AuditEvent.objects.get(action="audience.publish")
    assert denied.outcome == "denied" and denied.target_id == str(target.pk)


def test_a_rollback_asks_the_policy_once(actor, sandbox, decisions):
    people(sandbox, "eu", 2)
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    publish_now(operator, target)
    publish_now(operator, fresh(target))
    decisions.clear()

    outcome = publish.audience_rollback(actor=operator, audience=fresh(target), version=1)

    assert outcome.ran and outcome.result is not None and outcome.result.version.rebuilt_from.number == 1
    assert decisions.count("audience.rollback") == 1


def test_a_caller_who_may_not_roll_back_is_refused_before_the_version_is_looked_up(actor, sandbox, decisions):
    people(sandbox, "eu", 1)
    target = AudienceFactory(environment=sandbox)
    publish_now(actor("operator"), target)

    with pytest.raises(policy.PolicyDenied):
        publish.audience_rollback(actor=actor("analyst"), audience=fresh(target), version=99)

    assert decisions.count("audience.rollback") == 1
    assert AuditEvent.objects.get(action="audience.rollback").outcome == "denied"


def test_a_rollback_held_for_approval_carries_its_warning(actor, pilot, settings):
    settings.AUDIENCE_VERSIONS_WITH_MEMBERS = 1
    ApprovalPolicy.objects.create(
        environment=pilot, action="audience.rollback", steps=[["approver"]], description="Rollbacks"
    )
    people(pilot, "pilot", 1)
    operator = actor("operator", pilot)
    target = AudienceFactory(environment=pilot)
    publish_now(operator, target)
    publish_now(operator, fresh(target))

    outcome = publish.audience_rollback(actor=operator, audience=fresh(target), version=1)

    assert outcome.approval is not None and outcome.approval.action == "audience.rollback"
    assert [w["code"] for w in outcome.warnings] == ["rebuilt_from_rules"]
