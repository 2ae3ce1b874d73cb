"""GET /audiences/{id}/memberships: the live version's members, cursor pages by profile id,
stable while a new version goes live, masked per role, a fixed number of queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.publishing.pagination import members_cursor
from governance.models import AuditEvent
from tests.audiences.publish_support import fresh, people, publish_now, set_consent
from tests.factories import AudienceFactory
from tests.refusals import refused

pytestmark = pytest.mark.django_db


def _walk(client, url: str) -> list[dict]:
    rows, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        rows += body["results"]
        url = body["next"]
        pages += 1
    return rows


def test_memberships_are_the_live_versions_members_in_pages(api, actor, sandbox):
    members = people(sandbox, "eu", 5)
    people(sandbox, "eu-denied", 2, consent="denied")
    target = AudienceFactory(environment=sandbox)
    publish_now(actor("operator"), target)
    client = api("analyst")

    first = client.get(f"/api/v1/audiences/{target.pk}/memberships?limit=2").json()

    assert first["version"]["number"] == 1 and first["version"]["members"] == 5 and first["version"]["is_live"]
    assert len(first["results"]) == 2 and first["next"]
    rows = _walk(client, f"/api/v1/audiences/{target.pk}/memberships?limit=2")
    assert [r["external_id"] for r in rows] == [p.external_id for p in sorted(members, key=lambda p: p.pk)]
    assert [r["profile_id"] for r in rows] == sorted(r["profile_id"] for r in rows)


def test_pagination_is_stable_while_a_new_version_goes_live(api, actor, sandbox):
    # given: v1 = six people, and a client half-way through its pages
    v1_people = people(sandbox, "eu", 6)
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    publish_now(operator, target)
    client = api("analyst")
    first = client.get(f"/api/v1/audiences/{target.pk}/memberships?limit=3").json()

    # when: three withdraw consent, two join, and version 2 goes live
    set_consent(v1_people[:3], "denied")
    people(sandbox, "new", 2)
    publish_now(operator, fresh(target))
    assert fresh(target).live_version.number == 2

    # then: the walk that began on v1 finishes on v1, without a repeat or a gap
    rest = _walk(client, first["next"])
    seen = [r["external_id"] for r in first["results"] + rest]
    assert seen == [p.external_id for p in v1_people]
    later = client.get(first["next"]).json()
    assert later["version"] == {**later["version"], "number": 1, "is_live": False}
    # a new walk reads the new live version
    again = _walk(client, f"/api/v1/audiences/{target.pk}/memberships")
    assert {r["external_id"] for r in again} == {p.external_id for p in v1_people[3:]} | {"new-0", "new-1"}


def test_a_cursor_of_a_version_no_longer_kept_is_410(api, actor, sandbox, settings):
    settings.AUDIENCE_VERSIONS_WITH_MEMBERS = 1
    people(sandbox, "eu", 3)
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    publish_now(operator, target)
    client = api("analyst")
    first = client.get(f"/api/v1/audiences/{target.pk}/memberships?limit=1").json()
    publish_now(operator, fresh(target))

    response = client.get(first["next"])

    assert response.status_code == 410 and response.json()["code"] == "cursor_expired"


def test_bad_cursors_and_limits(api, actor, sandbox):
    people(sandbox, "eu", 1)
    operator = actor("operator")
    target, other = AudienceFactory(environment=sandbox), AudienceFactory(environment=sandbox, name="Other")
    publish_now(operator, target)
    publish_now(operator, other)
    client = api("analyst")
    url = f"/api/v1/audiences/{target.pk}/memberships"
    assert client.get(url + "?cursor=nonsense").json()["code"] == "invalid_cursor"
    foreign = members_cursor(fresh(other).live_version_id, 0)
    assert client.get(url + f"?cursor={foreign}").json()["code"] == "invalid_cursor"
    assert client.get(url + "?limit=0").status_code == 400
    assert client.get(url + "?limit=1001").status_code == 400
    assert client.get(url + "?regoin=EU").json()["code"] == "unknown_query_parameter"


def test_an_unpublished_audience_has_no_members(api, sandbox):
    target = AudienceFactory(environment=sandbox)
    body = api("analyst").get(f"/api/v1/audiences/{target.pk}/memberships").json()
    assert body == {"version": None, "next": None, "pii_masked": True, "results": []}


def test_pii_is_masked_except_for_compliance_whose_read_is_audited(api, actor, sandbox):
    people(sandbox, "eu", 2)
    target = AudienceFactory(environment=sandbox)
    publish_now(actor("operator"), target)
    url = f"/api/v1/audiences/{target.pk}/memberships"

    masked = api("operator").get(url).json()
    assert masked["pii_masked"] is True
    assert masked["results"][0]["email"] == "e***@e***.test" and masked["results"][0]["first_name"] == "A***"
    assert not AuditEvent.objects.filter(action="profile.pii_read").exists()

    plain = api("compliance").get(url).json()
    assert plain["pii_masked"] is False and plain["results"][0]["email"] == "eu-0@example.test"
    read = AuditEvent.objects.get(action="profile.pii_read")
    assert sorted(read.changes["profile_ids"]) == sorted(r["profile_id"] for r in plain["results"])


def test_a_page_costs_the_same_number_of_queries_whatever_its_size(api, actor, sandbox):
    people(sandbox, "eu", 30)
    target = AudienceFactory(environment=sandbox)
    publish_now(actor("operator"), target)
    client = api("analyst")
    url = f"/api/v1/audiences/{target.pk}/memberships"
    client.get(url)  # warm the permission cache
    cursor_url = client.get(url + "?limit=5").json()["next"]

    counts = {}
    for name, path in {"2": url + "?limit=2", "25": url + "?limit=25", "cursor": cursor_url}.items():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(path).status_code == 200
        counts[name] = len(ctx.captured_queries)
    # the cursor page reads its version by id: one query more than page 1, which has it already
    assert counts["2"] == counts["25"] == counts["cursor"] - 1, counts


def test_memberships_of_another_environment_are_a_404(api, sandbox, pilot):
    target = AudienceFactory(environment=sandbox)
    refused(api("analyst", pilot).get(f"/api/v1/audiences/{target.pk}/memberships"), 404, "audience_not_found")


@pytest.mark.parametrize(
    "querystring",
    ["p=5", "p=abc&v={version}", "p=5&v=x", "o=-1&v={version}"],
    ids=["no version", "a position that is no profile id", "a version that is no id", "a negative offset"],
)
def test_a_crafted_cursor_is_a_400_problem_not_a_500(api, actor, sandbox, querystring):
    import base64

    people(sandbox, "eu", 2)
    target = AudienceFactory(environment=sandbox)
    publish_now(actor("operator"), target)
    raw = querystring.format(version=fresh(target).live_version_id)
    cursor = base64.b64encode(raw.encode()).decode()

    response = api("analyst").get(f"/api/v1/audiences/{target.pk}/memberships", {"cursor": cursor})

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_cursor" and response.json()["hint"]
