"""Policy simulation over a fixture month with a known answer, and proposals of
approval-policy changes that an admin applies through an approval request."""

from __future__ import annotations

from datetime import timedelta

import pytest

from governance.models import ApprovalPolicy, ApprovalRequest, ApprovalState, AuditEvent, Outcome
from tests.observability.history import HOUR, T0, event, request

pytestmark = pytest.mark.django_db
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


@pytest.fixture
def month(sandbox, pilot, persona):
    operator, operator2, developer = persona("operator"), persona("operator2"), persona("developer")
    # Writes: operator sends 5 in one minute twice, operator2 3 in one minute; a developer 6.
    for minute_start in (T0 + HOUR, T0 + DAY):
        for i in range(5):
            request(sandbox, minute_start + i * SECOND, "audience-list", 201, user=operator, rate_class="write")
    for i in range(3):
        request(sandbox, T0 + 2 * HOUR + i * SECOND, "audience-list", 201, user=operator2, rate_class="write")
    for i in range(6):
        request(sandbox, T0 + 3 * HOUR + i * SECOND, "token-list", 201, user=developer, rate_class="write")
    # One 429 already in the log (the rules in force), which a replay does not count again.
    request(sandbox, T0 + HOUR, "audience-list", 429, user=operator, rate_class="write", code="rate_limited")
    # Publishes: operator 4 on one day and 1 on another, operator2 2 on one day.
    for i in range(4):
        event(sandbox, "audience.publish", T0 + 5 * DAY + i * HOUR, target="1", user=operator)
    event(sandbox, "audience.publish", T0 + 6 * DAY, target="1", user=operator)
    for i in range(2):
        event(sandbox, "audience.publish", T0 + 7 * DAY + i * HOUR, target="2", user=operator2)
    # Pilot publishes with their reach: 3 above 10,000 (two by operator), 2 below.
    for reach, user in (
        (20_000, operator),
        (15_000, operator),
        (12_000, operator2),
        (9_000, operator2),
        (500, operator),
    ):
        AuditEvent.objects.create(
            environment=pilot,
            occurred_at=T0 + 8 * DAY,
            actor_user=user,
            actor_label=user.username,
            door="api",
            action="audience.publish",
            target_type="audiences.audience",
            target_id="9",
            outcome=Outcome.ALLOWED,
            changes={"reach_at_request": reach},
        )
    return operator, operator2, developer


def test_a_lower_rate_limit_over_the_fixture_month(api, month):
    response = api("admin").post(
        "/api/v1/metrics/policy/simulate?since=2026-11-01&until=2026-12-01",
        {"kind": "rate_limit", "rate_class": "write", "limit": 3},
        format="json",
    )

    body = response.json()
    assert response.status_code == 200, body
    # operator: 2 over in each of two minutes; developer: 3 over; operator2: none.
    assert body["affected"] == [{"username": "p-operator", "times": 4}, {"username": "p-developer", "times": 3}]
    assert (body["total"], body["people"], body["currently"], body["would_be"]) == (7, 2, 1, "limited")


def test_a_rate_limit_for_one_role_only(api, month):
    body = (
        api("admin")
        .post(
            "/api/v1/metrics/policy/simulate?since=2026-11-01&until=2026-12-01",
            {"kind": "rate_limit", "rate_class": "write", "limit": 3, "role": "campaign_operator"},
            format="json",
        )
        .json()
    )

    assert body["affected"] == [{"username": "p-operator", "times": 4}]


def test_a_daily_publish_quota_over_the_fixture_month(api, month):
    body = (
        api("approver")
        .post(
            "/api/v1/metrics/policy/simulate?since=2026-11-01&until=2026-12-01",
            {"kind": "quota", "action": "audience.publish", "limit": 2, "period": "day"},
            format="json",
        )
        .json()
    )

    assert body["affected"] == [{"username": "p-operator", "times": 2}]
    assert body["would_be"] == "refused"


def test_an_approval_policy_over_a_pilot_month(month, pilot, persona):
    from rest_framework.test import APIClient

    from tests.conftest import issue_test_token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_test_token(persona('admin'), pilot)}")
    body = client.post(
        "/api/v1/metrics/policy/simulate?since=2026-11-01&until=2026-12-01",
        {
            "kind": "approval_policy",
            "action": "audience.publish",
            "metric": "reach",
            "threshold": 10000,
            "steps": [["approver"]],
        },
        format="json",
    ).json()

    assert body["affected"] == [{"username": "p-operator", "times": 2}, {"username": "p-operator2", "times": 1}]
    assert body["would_be"] == "asked for approval" and body["total"] == 3


def test_a_sandbox_never_asks_for_approval(api, month):
    body = (
        api("admin")
        .post(
            "/api/v1/metrics/policy/simulate?since=2026-11-01&until=2026-12-01",
            {"kind": "approval_policy", "action": "audience.publish", "steps": [["approver"]]},
            format="json",
        )
        .json()
    )
    assert body["total"] == 0


@pytest.mark.parametrize(
    ("rule", "pointers"),
    [
        ({"kind": "speed"}, ["/kind"]),
        ({"kind": "rate_limit", "rate_class": "fast", "limit": 0}, ["/limit", "/rate_class"]),
        (
            {"kind": "quota", "action": "Publish!", "limit": 2, "period": "week", "colour": 1},
            ["/action", "/colour", "/period"],
        ),
        (
            {"kind": "approval_policy", "action": "audience.view", "steps": [], "metric": "reach"},
            ["/action", "/metric", "/steps"],
        ),
    ],
)
def test_bad_rules_are_refused_each_with_a_hint(api, rule, pointers):
    response = api("admin").post("/api/v1/metrics/policy/simulate", rule, format="json")

    body = response.json()
    assert response.status_code == 422 and body["code"] == "invalid_rule"
    assert sorted(e["pointer"] for e in body["errors"]) == pointers
    assert all(e["hint"] for e in body["errors"])


def test_simulation_is_refused_to_an_operator(api):
    response = api("operator").post(
        "/api/v1/metrics/policy/simulate", {"kind": "rate_limit", "rate_class": "write", "limit": 1}, format="json"
    )
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


PROPOSAL = {"kind": "approval_policy", "action": "audience.publish", "metric": "reach", "threshold": 10000,
            "steps": [["approver"]], "description": "Publishing to more than 10,000 people"}  # fmt: skip


def _client_in(environment, user):
    from rest_framework.test import APIClient

    from tests.conftest import issue_test_token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_test_token(user, environment)}")
    return client


def test_marketing_ops_proposes_and_an_admin_applies_through_an_approval(
    pilot, persona, month, django_capture_on_commit_callbacks, eager_celery
):
    ops, admin = persona("marketing_ops"), persona("admin")
    before = ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").count()

    filed = _client_in(pilot, ops).post("/api/v1/metrics/policy/proposals", PROPOSAL, format="json")

    assert filed.status_code == 202, filed.json()
    request_id = filed.json()["approval"]["id"]
    proposal = ApprovalRequest.objects.get(pk=request_id)
    assert proposal.action == "approval_policy.propose" and proposal.policy["steps"] == [["admin"]]
    assert "would have asked for approval 3 time(s)" in proposal.change["simulation"]
    assert ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").count() == before

    with django_capture_on_commit_callbacks(execute=True):
        voted = _client_in(pilot, admin).post(f"/api/v1/approvals/{request_id}/approve", {}, format="json")

    assert voted.status_code == 200, voted.json()
    proposal.refresh_from_db()
    assert proposal.state == ApprovalState.EXECUTED, proposal.result
    added = ApprovalPolicy.objects.get(environment=pilot, action="audience.publish", threshold=10000)
    assert added.steps == [["approver"]] and added.metric == "reach"
    applied = AuditEvent.objects.filter(action="approval_policy.propose", outcome=Outcome.ALLOWED).get()
    assert applied.actor_user == ops and applied.approval_refs[0]["voter"] == "p-admin"


def test_a_proposal_waits_for_an_admin_even_in_a_sandbox(api):
    response = api("marketing_ops").post("/api/v1/metrics/policy/proposals", PROPOSAL, format="json")

    assert response.status_code == 202
    assert not ApprovalPolicy.objects.filter(threshold=10000).exists()


def test_a_proposal_to_change_an_existing_policy(pilot, persona, django_capture_on_commit_callbacks, eager_celery):
    existing = ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").first()
    assert existing is not None
    ops, admin = persona("marketing_ops"), persona("admin")

    filed = _client_in(pilot, ops).post(
        "/api/v1/metrics/policy/proposals", {**PROPOSAL, "policy_id": existing.pk, "threshold": 80000}, format="json"
    )
    with django_capture_on_commit_callbacks(execute=True):
        _client_in(pilot, admin).post(f"/api/v1/approvals/{filed.json()['approval']['id']}/approve", {}, format="json")

    existing.refresh_from_db()
    assert existing.threshold == 80000


@pytest.mark.parametrize("persona_name", ["operator", "approver", "developer"])
def test_only_marketing_ops_and_admins_may_propose(api, persona_name):
    response = api(persona_name).post("/api/v1/metrics/policy/proposals", PROPOSAL, format="json")

    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert AuditEvent.objects.filter(action="approval_policy.propose", outcome=Outcome.DENIED).exists()


def test_a_proposal_for_a_policy_of_another_environment_is_not_found(api, pilot):
    other = ApprovalPolicy.objects.filter(environment=pilot).first()
    response = api("marketing_ops").post(
        "/api/v1/metrics/policy/proposals", {**PROPOSAL, "policy_id": other.pk}, format="json"
    )
    assert response.status_code == 404


def _admin_browser(persona_name="admin"):
    from django.test import Client

    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory(username=f"site-{persona_name}", is_staff=True, groups=[persona_name]))
    return client


def test_the_quota_policy_page_offers_simulate_before_save(month, sandbox):
    browser = _admin_browser()

    page = browser.get("/admin/governance/quotapolicy/add/").content.decode()
    assert 'id="simulate-button"' in page and 'formaction="../simulate/"' in page

    form = {"name": "publish-daily", "action": "audience.publish", "description": "", "period": "day", "limit": "2",
            "environment": str(sandbox.pk), "role": "", "is_active": "on"}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        # The month is in the past: replay it as if it were the last 30 days.
        from governance.metrics import period as period_module

        patch.setattr(period_module.timezone, "now", lambda: T0 + timedelta(days=30))
        result = browser.post("/admin/governance/quotapolicy/simulate/", {**form, "_simulate": "1"})

    html = result.content.decode()
    assert result.status_code == 200, html
    assert "would have refused 2 time(s), 1 person(s)" in html and "p-operator" in html
    from governance.models import QuotaPolicy

    assert not QuotaPolicy.objects.filter(name="publish-daily").exists()  # nothing saved yet
    assert 'name="limit" value="2"' in html and 'action="/admin/governance/quotapolicy/add/"' in html


def test_the_approval_policy_page_simulates_a_change_of_an_existing_policy(pilot, month):
    from governance.models import ApprovalPolicy

    existing = ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").first()
    form = {"environment": str(pilot.pk), "action": "audience.publish", "metric": "reach", "threshold": "10000",
            "steps": '[["approver"]]', "description": "x", "is_active": "on", "_simulate": "1"}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        from governance.metrics import period as period_module

        patch.setattr(period_module.timezone, "now", lambda: T0 + timedelta(days=30))
        result = _admin_browser().post(f"/admin/governance/approvalpolicy/{existing.pk}/simulate/", form)

    html = result.content.decode()
    assert result.status_code == 200, html
    assert "would have asked for approval 3 time(s), 2 person(s)" in html
    existing.refresh_from_db()
    assert existing.threshold != 10000


def test_simulate_shows_the_form_errors_and_saves_nothing(sandbox):
    result = _admin_browser().post(
        "/admin/governance/quotapolicy/simulate/", {"name": "x", "action": "Nope!", "period": "day", "limit": "-1"}
    )
    assert result.status_code == 422 and 'id="simulation-errors"' in result.content.decode()
