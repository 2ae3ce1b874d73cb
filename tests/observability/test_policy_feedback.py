"""The policy feedback loop over a fixture month: what fired most, for whom, and the
suggestion where a limit routinely stops legitimate work."""

from __future__ import annotations

import pytest

from governance.models import Outcome
from tests.observability.history import HOUR, MINUTE, PERIOD, T0, event, request

pytestmark = pytest.mark.django_db


@pytest.fixture
def month(sandbox, persona):
    people = [persona("operator"), persona("operator2"), persona("analyst")]
    # The write limit stops 4 publishes of 3 people; each got through a few minutes later.
    for index, user in enumerate(people):
        t = T0 + index * HOUR
        request(sandbox, t, "audience-publish", 429, user=user, code="rate_limited", rate_class="write")
        request(sandbox, t + 2 * MINUTE, "audience-publish", 202, user=user)
    request(sandbox, T0 + 9 * HOUR, "audience-publish", 429, user=people[0], code="rate_limited", rate_class="write")
    request(sandbox, T0 + 9 * HOUR + MINUTE, "audience-publish", 202, user=people[0])
    # A script hammering the bulk endpoint: many hits, one person, never through.
    for minute in range(6):
        request(
            sandbox, T0 + minute * MINUTE, "profile-bulk", 429, user=people[2], code="rate_limited", rate_class="bulk"
        )
    # A quota used up twice by one person.
    request(sandbox, T0 + 2 * HOUR, "audience-publish", 429, user=people[1], code="quota_exceeded")
    request(sandbox, T0 + 3 * HOUR, "audience-publish", 429, user=people[1], code="quota_exceeded")
    # Denials and approval requests from the audit trail.
    for user in people[:2]:
        event(sandbox, "audience.publish", T0 + HOUR, target="1", user=user, outcome=Outcome.DENIED)
    event(sandbox, "token.create", T0 + HOUR, user=people[2], outcome=Outcome.DENIED)
    event(sandbox, "audience.publish", T0 + HOUR, target="1", user=people[0], outcome=Outcome.APPROVAL_REQUESTED)
    # Outside the period: not counted.
    request(sandbox, T0 - HOUR, "audience-publish", 429, user=people[0], code="rate_limited", rate_class="write")
    return people


def test_policy_report_over_the_fixture_month(api, month, settings, django_assert_max_num_queries):
    settings.POLICY_SUGGEST_MIN_HITS = 4
    settings.POLICY_SUGGEST_MIN_PEOPLE = 3

    with django_assert_max_num_queries(20):
        response = api("admin").get("/api/v1/metrics/policy", PERIOD)

    body = response.json()
    assert response.status_code == 200, body
    write = next(r for r in body["rate_limits"] if r["rate_class"] == "write")
    assert (write["hits"], write["people"], write["then_succeeded"], write["people_then_succeeded"]) == (4, 3, 4, 3)
    assert write["top"][0] == {"username": "p-operator", "hits": 2}
    bulk = next(r for r in body["rate_limits"] if r["rate_class"] == "bulk")
    assert (bulk["hits"], bulk["people"], bulk["then_succeeded"]) == (6, 1, 0)
    assert body["rate_limits"][0]["rate_class"] == "bulk"  # most hits first
    assert [(q["route"], q["hits"], q["people"]) for q in body["quotas"]] == [("audience-publish", 2, 1)]
    assert [(d["action"], d["hits"], d["people"]) for d in body["denials"]] == [
        ("audience.publish", 2, 2),
        ("token.create", 1, 1),
    ]
    assert [(a["action"], a["hits"]) for a in body["approvals"]] == [("audience.publish", 1)]
    assert len(body["suggestions"]) == 1
    suggestion = body["suggestions"][0]
    assert (suggestion["kind"], suggestion["rate_class"], suggestion["hits"], suggestion["people"]) == (
        "rate_limit",
        "write",
        4,
        3,
    )
    assert "write rate limit" in suggestion["suggestion"]


def test_no_suggestion_below_the_rule(api, month, settings):
    settings.POLICY_SUGGEST_MIN_HITS = 5
    settings.POLICY_SUGGEST_MIN_PEOPLE = 3

    assert api("admin").get("/api/v1/metrics/policy", PERIOD).json()["suggestions"] == []


def test_the_admin_policy_report_shows_the_suggestion(month, settings, client):
    from tests.factories import UserFactory

    settings.POLICY_SUGGEST_MIN_HITS = 4
    client.force_login(UserFactory(username="root-admin", is_staff=True, groups=["admin"]))

    html = client.get("/admin/governance/requestlog/policy/", PERIOD).content.decode()

    assert "write rate limit stopped 4 requests of 3 people" in html
    assert html.count('class="metrics-chart"') == 4


def test_policy_report_is_refused_to_an_operator(api):
    response = api("operator").get("/api/v1/metrics/policy")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
