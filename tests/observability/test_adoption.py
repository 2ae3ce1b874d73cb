"""Adoption metrics over a fixture history with known answers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from governance.metrics.workflows import BY_NAME, WORKFLOWS, workflow_of_route
from governance.models import ApprovalState
from tests.factories import ApprovalRequestFactory
from tests.observability.history import HOUR, MINUTE, PERIOD, T0, event, request

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


@pytest.fixture
def history(sandbox, persona):
    operator, analyst, admin = persona("operator"), persona("analyst"), persona("admin")
    # A1: created in the portal, published 2 h later; nobody from engineering touched it.
    event(sandbox, "audience.create", T0 + HOUR, target="1", door="portal", user=operator)
    event(sandbox, "audience.published", T0 + 3 * HOUR, target="1", door="task")
    # A2: an admin edited it in the admin site between creation and publication (8 h).
    event(sandbox, "audience.create", T0 + 2 * HOUR, target="2", user=operator)
    event(sandbox, "audience.edit", T0 + 4 * HOUR, target="2", door="admin", user=admin)
    event(sandbox, "audience.published", T0 + 10 * HOUR, target="2", door="task")
    # A3: 4 h; its second publication a day later is not a second completion.
    event(sandbox, "audience.create", T0 + DAY, target="3", user=operator)
    event(sandbox, "audience.published", T0 + DAY + 4 * HOUR, target="3", door="task")
    event(sandbox, "audience.published", T0 + 2 * DAY, target="3", door="task")
    # A4: created before the period, published in it (29 h); an admin look after it is no intervention.
    event(sandbox, "audience.create", T0 - DAY, target="4", user=operator)
    event(sandbox, "audience.published", T0 + 5 * HOUR, target="4", door="task")
    event(sandbox, "audience.edit", T0 + 6 * HOUR, target="4", door="admin", user=admin)
    # A5: no creation on record; A6: published after the period.
    event(sandbox, "audience.published", T0 + 5 * HOUR, target="5", door="task")
    event(sandbox, "audience.create", T0 + 29 * DAY, target="6", user=operator)
    event(sandbox, "audience.published", T0 + 31 * DAY, target="6", door="task")
    # Doors of audience.publish: API twice, portal once, admin once.
    for door, user in (("api", operator), ("api", operator), ("portal", analyst), ("admin", admin)):
        event(sandbox, "audience.publish", T0 + 7 * HOUR, target="1", door=door, user=user)

    # Request log: 4 workflow 4xx of signed-in people, 2 resolved by the same person in 30 min.
    t = T0 + 8 * HOUR
    request(sandbox, t, "audience-validate", 422, user=operator, code="invalid_rules")
    request(sandbox, t + 10 * MINUTE, "audience-publish", 202, user=operator)
    request(sandbox, t + 2 * HOUR, "audience-publish", 403, user=operator, code="permission_denied")
    request(sandbox, t + 2 * HOUR + 40 * MINUTE, "audience-publish", 202, user=operator)
    request(sandbox, t + 5 * HOUR, "portal-audiences:new", 400, user=analyst, door="portal")
    request(sandbox, t + 5 * HOUR + 5 * MINUTE, "portal-audiences:new", 303, user=operator, door="portal")
    request(sandbox, t + 6 * HOUR, "audience-list", 429, user=analyst, code="rate_limited", rate_class="write")
    request(sandbox, t + 6 * HOUR + MINUTE, "audience-list", 201, user=analyst)
    # Not counted: not a workflow route; nobody signed in.
    request(sandbox, t, "token-list", 403, user=analyst)
    request(sandbox, t, "audience-list", 401, code="not_authenticated")

    # Approvals decided after 1 h, 3 h and 5 h; a pending and a cancelled one do not count.
    for hours, state in ((1, ApprovalState.APPROVED), (3, ApprovalState.REJECTED), (5, ApprovalState.EXECUTED)):
        ApprovalRequestFactory(
            environment=sandbox, created_at=T0 + DAY, decided_at=T0 + DAY + hours * HOUR, state=state
        )
    ApprovalRequestFactory(environment=sandbox, created_at=T0 + DAY)
    ApprovalRequestFactory(
        environment=sandbox, created_at=T0 + DAY, decided_at=T0 + DAY + 20 * HOUR, state=ApprovalState.CANCELLED
    )


def test_adoption_over_the_fixture_month_gives_the_known_answers(api, history, django_assert_max_num_queries):
    client = api("approver")

    with django_assert_max_num_queries(20):
        response = client.get("/api/v1/metrics/adoption", PERIOD)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["completed_without_intervention"] == {"completed": 4, "without_intervention": 3, "share": 0.75}
    audience = next(w for w in body["workflows"] if w["workflow"] == "audience")
    assert audience["time_to_completion"] == {"count": 4, "median_seconds": 21600.0, "p90_seconds": 81720.0}
    assert body["self_resolved_errors"] == {"errors_4xx": 4, "self_resolved": 2, "share": 0.5}
    assert body["approval_lead_time"] == {"count": 3, "median_seconds": 10800.0, "p90_seconds": 16560.0}
    publish = next(d for d in body["doors"] if d["action"] == "audience.publish")
    assert (publish["api"], publish["portal"], publish["admin"], publish["self_service_share"]) == (2, 1, 1, 0.75)
    campaign = next(w for w in body["workflows"] if w["workflow"] == "campaign")
    assert campaign["completed"] == 0 and campaign["share_without_intervention"] is None


def test_adoption_defaults_to_the_last_30_days(api):
    body = api("admin").get("/api/v1/metrics/adoption").json()
    assert body["period"]["environment"] == "sandbox"
    assert body["completed_without_intervention"]["share"] is None


@pytest.mark.parametrize("persona_name", ["analyst", "operator", "developer", "compliance", "nobody"])
def test_adoption_is_refused_to_other_roles(api, persona_name):
    response = api(persona_name).get("/api/v1/metrics/adoption")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_marketing_ops_may_read_metrics(api):
    assert api("marketing_ops").get("/api/v1/metrics/adoption").status_code == 200
    assert api("marketing_ops").get("/api/v1/metrics/policy").status_code == 200


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"since": "yesterday"}, 422, "invalid_period"),
        ({"since": "2026-12-01", "until": "2026-11-01"}, 422, "invalid_period"),
        ({"environment": "production"}, 404, "not_found"),
        ({"colour": "blue"}, 400, "unknown_query_parameter"),
    ],
)
def test_bad_periods_are_refused_with_a_hint(api, params, status, code):
    response = api("admin").get("/api/v1/metrics/adoption", params)
    assert response.status_code == status and response.json()["code"] == code
    assert response.json()["hint"]


def test_workflows_registry_names_the_product_workflows():
    assert [w.name for w in WORKFLOWS] == ["audience", "campaign", "export"]
    assert (BY_NAME["campaign"].start, BY_NAME["campaign"].finish) == ("campaign.create", "campaign.activated")
    assert (BY_NAME["export"].start, BY_NAME["export"].finish) == ("export.create", "export.download")
    assert workflow_of_route("portal-audiences:edit") is BY_NAME["audience"]
    assert workflow_of_route("token-list") is None


def _admin_site(groups):
    from django.test import Client

    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory(username=f"staff-{'-'.join(groups)}", is_staff=True, groups=groups))
    return client


def test_the_admin_adoption_report_draws_svg_charts(history):
    page = _admin_site(["admin"]).get("/admin/governance/requestlog/adoption/", PERIOD)

    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="metrics-chart"') == 4 and "Completed without engineering intervention" in html
    assert "3 of 4" in html


def test_the_admin_report_refuses_a_developer_with_the_reason():
    page = _admin_site(["developer"]).get("/admin/governance/requestlog/adoption/")

    assert page.status_code == 403 and 'id="metrics-problem"' in page.content.decode()


def test_the_admin_report_shows_a_bad_period_on_the_page():
    page = _admin_site(["admin"]).get("/admin/governance/requestlog/policy/", {"since": "soon"})

    assert page.status_code == 422 and "The period is not valid" in page.content.decode()
