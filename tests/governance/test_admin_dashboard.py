"""The dashboard on the admin index (marketerapi/admin/dashboard.py): pending approvals of
every environment the person may act in, and the dead letters, open circuit breakers,
quota hot spots and recent failed jobs of the environment they act in, in a fixed number of
queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.access.selectors import SESSION_ENVIRONMENT_KEY
from governance.actors import Actor
from governance.limits.services import quota_consume
from governance.models import ApprovalRequest, ApprovalState, Environment, QuotaPolicy
from integrations.destinations import breakers
from integrations.models import DeadLetter
from marketerapi.admin.dashboard import quota_hot_spots
from tests.conftest import issue_test_token
from tests.factories import ApprovalRequestFactory, DestinationFactory, JobFactory, UserFactory

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")


@pytest.fixture
def platform_admin(db):
    return UserFactory(username="platform-admin", is_staff=True, groups=["admin"])


@pytest.fixture
def site(client, platform_admin):
    client.force_login(platform_admin)
    return client


def _panel(html: str, key: str) -> str:
    match = re.search(rf'<div class="module" id="dashboard-{key}">(.*?)</div>', html, re.S)
    assert match, f"no {key} panel"
    return match.group(1)


_serial = iter(range(1, 1_000_000))


def _fill(environment, n: int) -> None:
    """n rows for every panel in `environment`, and as many that must not show."""
    requester = UserFactory(username=f"requester-{next(_serial)}", groups=["campaign_operator"])
    now = timezone.now()
    for i in range(n):
        k = next(_serial)
        ApprovalRequestFactory(
            environment=environment,
            target_id=str(k),
            summary=f"Archive audience {k}",
            requester=requester,
            created_at=now - timedelta(hours=i + 1),
        )
        ApprovalRequestFactory(
            environment=environment,
            target_id=str(k),
            summary=f"Done {k}",
            requester=requester,
            state=ApprovalState.EXECUTED,
            expires_at=now,
        )
        DeadLetter.objects.create(
            environment=environment, kind="webhook_delivery", reference_id=str(k), attempts=8, last_error="HTTP 503"
        )
        DeadLetter.objects.create(
            environment=environment, kind="webhook_delivery", reference_id=f"r{k}", resolved_at=now
        )
        tripped = DestinationFactory(environment=environment, name=f"crm-{k}", adapter="crm")
        for _ in range(breakers.failure_threshold()):
            breakers.Breaker.for_destination(tripped).record_failure("503 Service Unavailable")
        DestinationFactory(environment=environment, name=f"file-{k}")
        JobFactory(
            environment=environment,
            kind="export",
            failed=True,
            errors=[{"code": "boom", "message": f"the export {k} failed"}],
            finished_at=now,
        )
        JobFactory(environment=environment, kind="export", succeeded=True)
        # A person at 90 % of the default publish quota (100 a day), another at 10 %.
        hot = UserFactory(username=f"hot-{k}", groups=["campaign_operator"])
        cold = UserFactory(username=f"cold-{k}", groups=["campaign_operator"])
        with transaction.atomic():
            quota_consume(Actor(user=hot, environment=environment), "publish", 90)
            quota_consume(Actor(user=cold, environment=environment), "publish", 10)


def test_the_dashboard_shows_what_needs_an_engineer(site, sandbox):
    _fill(sandbox, 3)

    response = site.get("/admin/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Acting in <strong>sandbox</strong>" in html

    approvals = _panel(html, "approvals")
    assert "3 waiting for votes" in approvals
    # the oldest first (each one filled is an hour older than the one before), with its votes
    titles = re.findall(r"Archive audience (\d+)", approvals)
    assert titles == sorted(titles, key=int, reverse=True)
    assert "0 of 2 approval(s)" in approvals
    assert "/admin/governance/approvalrequest/" in approvals
    assert "Done " not in approvals

    dead = _panel(html, "dead_letters")
    assert "3 to replay or discard" in dead and "HTTP 503" in dead
    assert "resolved_at__isempty=1" in dead

    tripped = _panel(html, "breakers")
    assert "3 of 6 destination(s)" in tripped
    assert "crm-" in tripped and "file-" not in tripped
    assert "open after 5 consecutive failure(s)" in tripped

    hot = _panel(html, "quotas")
    assert "3 past 80 % of their limit" in hot
    assert "publish: hot-" in hot and "cold-" not in hot
    assert "90 of 100 per day (90 %)" in hot

    jobs = _panel(html, "jobs")
    assert "export #" in jobs and "failed" in jobs
    assert "state__exact=failed" in jobs


def test_an_empty_environment_says_so(site, production):
    session = site.session
    session[SESSION_ENVIRONMENT_KEY] = "production"
    session.save()

    html = site.get("/admin/").content.decode()

    assert "Acting in <strong>production</strong>" in html
    assert "No request is waiting for a vote in any environment." in html
    assert "No work is waiting after its last retry." in html
    assert "Every destination&#x27;s breaker is closed." in html
    assert "Nobody is past 80 % of a quota this period." in html
    assert "No job has failed." in html


def test_the_dashboard_is_of_the_environment_one_acts_in_but_approvals_of_every_one(site, sandbox, pilot):
    _fill(pilot, 1)

    in_sandbox = site.get("/admin/").content.decode()
    session = site.session
    session[SESSION_ENVIRONMENT_KEY] = "pilot"
    session.save()
    in_pilot = site.get("/admin/").content.decode()

    assert "0 to replay or discard" in _panel(in_sandbox, "dead_letters")
    assert "1 to replay or discard" in _panel(in_pilot, "dead_letters")
    # what waits for votes waits wherever one acts (issue 11, item 5), labelled with its environment
    for html in (in_sandbox, in_pilot):
        approvals = _panel(html, "approvals")
        assert "1 waiting for votes" in approvals
        assert "In every environment: sandbox 0, pilot 1, production 0." in approvals
        assert "[pilot] #" in approvals and "pilot · audience.archive" in approvals
        assert "/admin/governance/approvalrequest/?state__exact=pending" in approvals
    # quotas counted across environments are hot wherever one acts
    assert "1 past 80 %" in _panel(in_sandbox, "quotas")


def test_a_developer_sees_the_integration_panels_only(client, sandbox):
    client.force_login(UserFactory(username="dev", is_staff=True, groups=["developer"]))

    html = client.get("/admin/").content.decode()

    assert 'id="dashboard-dead_letters"' in html
    assert 'id="dashboard-breakers"' in html
    assert 'id="dashboard-jobs"' in html
    assert 'id="dashboard-approvals"' not in html
    assert 'id="dashboard-quotas"' not in html


def _index_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/admin/").status_code == 200
    return len(queries)


def test_the_dashboard_costs_a_fixed_number_of_queries(site, sandbox, pilot):
    _fill(sandbox, 2)
    _fill(pilot, 2)
    few = _index_queries(site)

    _fill(sandbox, 12)
    _fill(pilot, 5)
    many = _index_queries(site)

    assert many == few
    # session, user, roles and permissions, the environment, 2 approvals, 2 dead letters,
    # destinations, 5 for quotas (policies, usage, users, tokens, roles), jobs, the admin log
    assert few <= 20


def test_the_approvals_panel_costs_the_same_queries_however_many_environments(site, sandbox, pilot):
    _fill(pilot, 1)
    few = _index_queries(site)

    requester = UserFactory(username="far-requester", groups=["campaign_operator"])
    now = timezone.now()
    for index in range(5):
        environment = Environment.objects.create(slug=f"region{index}", name=f"Region {index}", data_kind="real")
        ApprovalRequest.objects.create(
            environment=environment,
            action="audience.archive",
            target_type="audiences.audience",
            target_id=str(index),
            summary=f"Archive far audience {index}",
            requester=requester,
            required=2,
            expires_at=now + timedelta(hours=70),
        )
    many = _index_queries(site)
    html = site.get("/admin/").content.decode()

    assert many == few
    approvals = _panel(html, "approvals")
    assert "6 waiting for votes" in approvals and "region4 1" in approvals


def test_the_dashboard_links_lead_to_pages_that_open(site, sandbox):
    _fill(sandbox, 1)
    html = site.get("/admin/").content.decode()

    links = set(re.findall(r'href="(/admin/[^"]+)"', html.split('id="dashboard"', 1)[1].split("app-list", 1)[0]))

    assert len(links) >= 9
    for link in links:
        assert site.get(link.replace("&amp;", "&")).status_code == 200, link


# --- quota hot spots: the policy that counts into each row, as governance.limits.quotas chooses it ---------


def _consume(user, environment, name, amount, token=None):
    with transaction.atomic():
        return quota_consume(Actor(user=user, environment=environment, token=token), name, amount)


def _spots(environment):
    spots, capped = quota_hot_spots(environment)
    assert not capped
    return {(s.status.name, s.who): s.status for s in spots}


def test_a_hot_spot_is_judged_by_the_most_specific_policy(sandbox):
    generous = UserFactory(username="generous", groups=["campaign_operator"])
    plain = UserFactory(username="plain", groups=["campaign_operator"])
    QuotaPolicy.objects.create(name="publish", action="audience.publish", period="day", limit=1000, user=generous)
    _consume(generous, sandbox, "publish", 90)  # 9 % of its own 1,000
    _consume(plain, sandbox, "publish", 80)  # 80 % of the default 100

    spots = _spots(sandbox)

    assert ("publish", "generous") not in spots
    assert spots[("publish", "plain")].percent == 80.0
    assert spots[("publish", "plain")].source == "default"


def test_a_role_policy_and_a_token_policy_are_their_own_limits(sandbox):
    analyst = UserFactory(username="ana", groups=["analyst"])
    QuotaPolicy.objects.create(name="export-masked", action="export.create", period="month", limit=10, role="analyst")
    _consume(analyst, sandbox, "export-masked", 9)
    integration = UserFactory(username="crm-sync", groups=["developer"])
    issue_test_token(integration, sandbox)
    token = integration.api_tokens.get()
    QuotaPolicy.objects.create(name="publish", action="audience.publish", period="day", limit=5, token=token)
    _consume(integration, sandbox, "publish", 5, token=token)

    spots = _spots(sandbox)

    assert spots[("export-masked", "ana")].limit == 10
    assert spots[("export-masked", "ana")].source == "role:analyst"
    token_spot = spots[("publish", f"token {token.prefix}… (crm-sync)")]
    assert token_spot.percent == 100.0 and token_spot.source == "token"


def test_an_environment_policy_is_hot_in_its_environment_only(sandbox, production):
    person = UserFactory(username="pat", groups=["campaign_operator"])
    QuotaPolicy.objects.create(
        name="publish", action="audience.publish", period="day", limit=10, environment=production
    )
    _consume(person, production, "publish", 9)

    assert ("publish", "pat") in _spots(production)
    assert ("publish", "pat") not in _spots(sandbox)


def test_last_periods_use_and_an_inactive_policy_are_not_hot(sandbox, monkeypatch):
    person = UserFactory(username="old", groups=["campaign_operator"])
    yesterday = timezone.now() - timedelta(days=1)
    monkeypatch.setattr(timezone, "now", lambda: yesterday)
    _consume(person, sandbox, "publish", 99)
    monkeypatch.undo()
    other = UserFactory(username="off", groups=["campaign_operator"])
    _consume(other, sandbox, "export-pii", 9)
    QuotaPolicy.objects.filter(name="export-pii").update(is_active=False)

    assert _spots(sandbox) == {}


def test_past_the_candidates_weighed_the_count_says_there_are_more(site, sandbox, monkeypatch):
    from marketerapi.admin import dashboard as admin_dashboard

    monkeypatch.setattr(admin_dashboard, "HOT_SPOT_CANDIDATES", 2)
    for i in range(3):
        _consume(UserFactory(username=f"busy-{i}", groups=["campaign_operator"]), sandbox, "publish", 95 - i)

    html = site.get("/admin/").content.decode()

    assert "2+ past 80 % of their limit" in _panel(html, "quotas")
    assert "busy-0" in _panel(html, "quotas") and "busy-2" not in _panel(html, "quotas")
