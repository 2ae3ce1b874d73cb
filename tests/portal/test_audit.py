"""The audit timeline: plain words, filters parsed like the API's (bad values shown beside
their field with the hint), the read scope per role, cursor pages, one object's history,
the htmx fragment other pages embed, and a fixed number of queries."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audiences.definitions import services as audience_services
from governance.actors import Actor
from governance.audit import trail as audit
from governance.audit.selectors import DATETIME_HINT
from governance.models import Door, Environment, Outcome
from tests.factories import AudienceFactory, AudienceVersionFactory, UserFactory
from tests.portal.conftest import htmx

pytestmark = pytest.mark.django_db


def text(response) -> str:
    """The page's text as a reader sees it: no tags, entities decoded, whitespace collapsed."""
    flat = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))
    for mark in ".,:;)":
        flat = flat.replace(f" {mark}", mark)
    return flat.replace("( ", "(")


def event_ids(response) -> list[int]:
    return [int(x) for x in re.findall(r'data-event-id="(\d+)"', response.content.decode())]


def act(user, environment: Environment, door: str = Door.PORTAL, request_id: str = "req_timeline") -> Actor:
    return Actor(user=user, environment=environment, door=door, request_id=request_id)


@pytest.fixture
def story(db, sandbox, persona):
    """maria publishes 'Spring EU buyers' (version 3); tom's delete of it is denied; the
    analyst persona changes nothing but is refused once; one event in another environment."""
    maria = UserFactory(username="maria", groups=["campaign_operator", "growth"])
    tom = UserFactory(username="tom", groups=["campaign_operator", "retention"])
    analyst = persona("analyst")
    audience = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    other = AudienceFactory(environment=sandbox, name="Lapsed UK")
    events = {
        "published": audit.record(
            act(maria, sandbox), "audience.publish", audience, changes={"version": 3, "job": 7, "live_version": 2}
        ),
        "denied": audit.record(
            act(tom, sandbox, door=Door.API, request_id="req_tom_1"),
            "audience.delete",
            audience,
            outcome=Outcome.DENIED,
            reasons=["Spring EU buyers is owned by the team 'growth'; you are not in it."],
        ),
        "analyst": audit.record(
            act(analyst, sandbox),
            "audience.edit",
            other,
            outcome=Outcome.DENIED,
            reasons=["Edit audiences needs one of the roles: campaign_operator, developer, admin."],
        ),
        "other_object": audit.record(act(maria, sandbox), "audience.edit", other, changes={"fields": ["description"]}),
    }
    pilot = Environment.objects.get(slug="pilot")
    audit.record(act(maria, pilot), "audience.create", AudienceFactory(environment=pilot, name="Pilot only"))
    return {"audience": audience, "other": other, "events": events}


# --- plain words and what each entry shows --------------------------------------------------


def test_each_entry_in_plain_words_with_outcome_time_and_door(portal, story):
    response = portal("approver").get("/audit/")

    assert response.status_code == 200
    page = text(response)
    assert "maria published 'Spring EU buyers' (version 3) — allowed" in page
    assert (
        "tom tried to delete 'Spring EU buyers' — denied: Spring EU buyers is owned by the team 'growth'; "
        "you are not in it." in page
    )
    assert "maria changed 'Lapsed UK': description — allowed" in page
    body = response.content.decode()
    denied = story["events"]["denied"]
    entry = body[body.index(f'data-event-id="{denied.pk}"') :]
    entry = entry[: entry.index("</li>")]
    assert 'data-outcome="denied"' in entry and 'class="badge denied"' in entry
    assert 'data-door="api"' in entry and "through the API" in entry
    # the request id is there on demand (inside the details disclosure)
    assert "<details" in entry and "req_tom_1" in entry
    assert f'datetime="{denied.occurred_at.isoformat()}"' in entry
    # newest first, and nothing of another environment
    assert event_ids(response) == sorted(event_ids(response), reverse=True)
    assert "Pilot only" not in page


def test_the_words_of_the_approval_workflow(portal, pilot, persona, eager_celery, django_capture_on_commit_callbacks):
    audience = AudienceFactory(environment=pilot, name="Pilot EU")
    AudienceVersionFactory(audience=audience, live=True)
    operator = persona("operator")
    request = audience_services.audience_delete(actor=act(operator, pilot), audience=audience).approval
    approver = portal("approver", pilot)
    approver.post(f"/approvals/{request.pk}/approve/", {"comment": "Checked."})
    with django_capture_on_commit_callbacks(execute=True):
        portal("admin", pilot).post(f"/approvals/{request.pk}/approve/")

    page = text(approver.get("/audit/"))

    summary = "(“Archive the published audience 'Pilot EU'”)"
    assert "p-operator asked to archive 'Pilot EU' — waits for approval (request" in page
    assert f"p-approver approved request {request.pk} {summary}: 1 of 2 approvals — “Checked.” — allowed" in page
    assert f"p-admin approved request {request.pk} {summary}: 2 of 2 approvals, so it is approved — allowed" in page
    assert "p-operator archived 'Pilot EU' — allowed" in page
    assert f"Request {request.pk} {summary} ran as p-operator: Approved by p-approver, p-admin. — allowed" in page


# --- filters --------------------------------------------------------------------------------


def test_filters_by_object_user_action_and_outcome(portal, story):
    client = portal("approver")
    events, audience = story["events"], story["audience"]

    by_object = client.get("/audit/", {"target": f"audiences.audience:{audience.pk}"})
    assert set(event_ids(by_object)) == {events["published"].pk, events["denied"].pk}
    assert f'value="audiences.audience:{audience.pk}"' in by_object.content.decode()  # the form keeps it

    assert set(event_ids(client.get("/audit/", {"actor": "tom"}))) == {events["denied"].pk}
    assert set(event_ids(client.get("/audit/", {"action": "audience.edit"}))) == {
        events["analyst"].pk,
        events["other_object"].pk,
    }
    assert set(event_ids(client.get("/audit/", {"action": "audience.*", "outcome": "denied"}))) == {
        events["denied"].pk,
        events["analyst"].pk,
    }
    # an empty field of the form is no filter
    everything = client.get("/audit/", {"target": "", "actor": "", "action": "", "outcome": "", "since": ""})
    assert len(event_ids(everything)) == 4


def test_filters_by_time(portal, story):
    client = portal("approver")
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()

    assert event_ids(client.get("/audit/", {"since": tomorrow})) == []
    assert "No events match the filter" in text(client.get("/audit/", {"since": tomorrow}))
    assert len(event_ids(client.get("/audit/", {"until": tomorrow}))) == 4


def test_a_bad_filter_value_shows_its_hint_beside_the_field(portal, story):
    response = portal("approver").get("/audit/", {"since": "yesterday", "outcome": "maybe", "target": "42"})

    assert response.status_code == 422
    body = response.content.decode()
    assert 'id="filter-since" name="since" type="text" value="yesterday"' in body
    assert 'aria-invalid="true"' in body and 'id="filter-since-error"' in body
    since_error = body[body.index('id="filter-since-error"') :]
    assert "is not an ISO 8601 date-time." in html.unescape(since_error[: since_error.index("</span></span>")])
    page = text(response)
    assert DATETIME_HINT in page
    assert "Use one of: allowed, denied, failed, approval_requested." in page
    assert "Use type:id as shown in an event's target, e.g. audiences.audience:42" in page
    assert "Some filter values are not valid" in page and "Fix the filters marked above" in page
    assert event_ids(response) == []


def test_until_before_since_is_refused_with_its_hint(portal, story):
    response = portal("approver").get("/audit/", {"since": "2026-11-02", "until": "2026-11-01"})

    assert response.status_code == 422
    assert "`since` is inclusive and `until` exclusive" in text(response)


def test_an_unknown_parameter_is_named(portal, story):
    response = portal("approver").get("/audit/", {"user": "tom"})

    assert response.status_code == 400
    assert "'user' is not a parameter of this endpoint." in text(response)


# --- who reads what -------------------------------------------------------------------------


def test_an_analyst_sees_only_their_own_actions_and_is_told_so(portal, story):
    response = portal("analyst").get("/audit/")

    assert event_ids(response) == [story["events"]["analyst"].pk]
    assert 'data-scope="own"' in response.content.decode()
    assert "You see your own actions in Sandbox" in text(response)
    # filtering for someone else finds nothing rather than their events
    assert event_ids(portal("analyst").get("/audit/", {"actor": "maria"})) == []


@pytest.mark.parametrize("name", ["approver", "compliance", "admin"])
def test_approvers_compliance_reviewers_and_admins_see_everyones(portal, story, name):
    response = portal(name).get("/audit/")

    assert len(event_ids(response)) == 4
    assert 'data-scope="all"' in response.content.decode() and "You see everyone’s actions" in text(response)


@pytest.mark.parametrize("name", ["operator", "developer"])
def test_operators_and_developers_see_their_own(portal, story, name):
    response = portal(name).get("/audit/")

    assert event_ids(response) == [] and 'data-scope="own"' in response.content.decode()
    assert "No events among your own actions." in text(response)


def test_someone_without_a_role_may_not_read_the_log(portal, story):
    response = portal("nobody").get("/audit/")

    assert response.status_code == 403 and "Read the audit log needs one of the roles" in text(response)


# --- pages, one object's history, the fragment ---------------------------------------------


def test_older_pages_follow_a_cursor(portal, sandbox, persona):
    maria = UserFactory(username="maria", groups=["campaign_operator", "growth"])
    audience = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    made = [audit.record(act(maria, sandbox), "audience.edit", audience).pk for _ in range(55)]
    client = portal("approver")

    first = client.get("/audit/")
    assert event_ids(first) == sorted(made, reverse=True)[:50]
    older = re.search(r'href="(/audit/\?[^"]+)" id="older-link"', first.content.decode())
    assert older is not None

    second = client.get(html.unescape(older.group(1)))
    assert event_ids(second) == sorted(made, reverse=True)[50:]
    assert 'id="older-link"' not in second.content.decode() and 'id="newest-link"' in second.content.decode()


def test_a_forged_cursor_is_refused_with_a_hint(portal, story):
    response = portal("approver").get("/audit/", {"cursor": "not-a-cursor"})

    assert response.status_code == 400 and "Follow the “Older” link as shown" in text(response)


def test_one_objects_history_as_an_htmx_fragment(portal, story):
    audience = story["audience"]

    response = htmx(portal("approver"), "get", "/audit/", {"target": f"audiences.audience:{audience.pk}", "limit": "1"})

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="audit-list"') and "<html" not in body
    assert event_ids(response) == [story["events"]["denied"].pk]  # the newest one, limit 1
    assert 'id="older-link"' in body and f"target=audiences.audience%3A{audience.pk}" in body


def test_a_bad_filter_in_the_fragment_lists_each_hint(portal, story):
    response = htmx(portal("approver"), "get", "/audit/", {"target": "audiences.audience"})

    assert response.status_code == 422
    assert "<html" not in response.content.decode()
    assert "Use type:id as shown in an event's target" in text(response)


def test_the_timeline_answers_in_a_fixed_number_of_queries(portal, sandbox):
    maria = UserFactory(username="maria", groups=["campaign_operator", "growth"])
    audience = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    client = portal("approver")

    def queries(count: int) -> int:
        for _ in range(count):
            audit.record(act(maria, sandbox), "audience.edit", audience, changes={"fields": ["rules"]})
        client.get("/audit/")
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/audit/").status_code == 200
        return len(captured)

    few, many = queries(2), queries(60)
    assert few == many and many <= 6
