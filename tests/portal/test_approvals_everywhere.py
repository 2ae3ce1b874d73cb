"""Approvals across environments (issue 11, item 5): an approver working in the sandbox sees,
on home and in the inbox, what waits for them in pilot and production, each labelled with
its environment; opening one switches there (a request is voted on in its own environment,
under its policy); and the pages cost the same number of queries however many environments
there are."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.models import ApprovalRequest, AuditEvent, DataKind, Environment
from tests.portal.test_approvals import body, detail_url, file_archive, text

pytestmark = pytest.mark.django_db


def waiting_request(environment: Environment, requester, name: str) -> ApprovalRequest:
    """A pending archive request, as the workflow files it (one approver, then a developer or admin)."""
    now = timezone.now()
    return ApprovalRequest.objects.create(
        environment=environment,
        action="audience.archive",
        target_type="audiences.audience",
        target_id="1",
        target_label=name,
        summary=f"Archive the published audience {name!r}",
        change={"name": name},
        policy={"steps": [["approver"], ["developer", "admin"]], "description": "Archiving"},
        requester=requester,
        required=2,
        created_at=now,
        expires_at=now + timedelta(hours=72),
    )


def rows(html: str, section: str) -> list[tuple[str, str]]:
    """(environment, approval id) of each request listed in an inbox section."""
    part = html.split(f'id="{section}"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'data-approval-id="(\d+)"[^>]*data-environment="([a-z]+)"', part)


def test_an_approver_in_the_sandbox_sees_what_waits_in_pilot_and_production(portal, pilot, production):
    in_pilot = file_archive(portal("operator", pilot), pilot, "Pilot list")
    in_production = file_archive(portal("operator2", production), production, "Prod list", owner="retention")
    approver = portal("approver")  # working in the sandbox

    home = approver.get("/")
    waiting = body(home).split('id="waiting-for-me"', 1)[1].split("</section>", 1)[0]
    assert "Nothing waits for your vote." not in waiting
    for request, name in ((in_pilot, "Pilot"), (in_production, "Production")):
        item = re.search(rf'<li data-approval-id="{request.pk}"(.*?)</li>', waiting, re.S).group(0)
        assert f'data-environment="{request.environment.slug}"' in item
        assert f">{name}</span>" in item  # labelled
        assert f'href="/approvals/{request.pk}/"' in item and f"you vote on it in {name}" in item

    inbox = body(approver.get("/approvals/"))
    expected = {(str(in_production.pk), "production"), (str(in_pilot.pk), "pilot")}
    assert set(rows(inbox, "waiting")) == expected
    assert set(rows(inbox, "open")) == expected
    intro = "Every request still waiting for votes in Sandbox, Pilot and Production."
    assert intro in text(approver.get("/approvals/"))


def test_opening_a_request_of_another_environment_switches_there_and_the_vote_is_recorded_there(
    portal, pilot, production
):
    request = file_archive(portal("operator", production), production, "Prod list")
    approver = portal("approver")  # in the sandbox

    where = approver.get(detail_url(request))
    assert f"Request {request.pk} is in Production" in text(where)
    assert 'id="approve-button"' not in body(where)  # no vote from the sandbox

    switched = approver.post(
        "/environment/",
        {"environment": "production", "next": f"/approvals/{request.pk}/", "next_in": "production"},
    )
    assert switched.status_code == 302 and switched["Location"] == f"/approvals/{request.pk}/"
    page = body(approver.get(switched["Location"]))
    assert 'id="approve-button"' in page and 'data-environment="production"' in page

    voted = approver.post(detail_url(request, "approve"), {"comment": "Checked."})
    assert voted.status_code == 303
    event = AuditEvent.objects.get(action="approval.approve")
    assert event.environment == production and event.outcome == "allowed"


def test_switching_without_next_in_still_leaves_object_pages_of_the_old_environment(portal, pilot):
    client = portal("approver")
    response = client.post("/environment/", {"environment": "pilot", "next": "/audiences/12/"})
    assert response["Location"] == "/audiences/"
    wrong = client.post("/environment/", {"environment": "pilot", "next": "/approvals/12/", "next_in": "production"})
    assert wrong["Location"] == "/approvals/"


def _queries(client, path: str) -> int:
    client.get(path)  # warm: new rows bumped the permission cache
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


@pytest.mark.parametrize("path", ["/", "/approvals/"])
def test_home_and_the_inbox_cost_the_same_queries_however_many_environments(portal, pilot, persona, path):
    requester = persona("operator")
    approver = portal("approver")
    waiting_request(pilot, requester, "In pilot")
    few = _queries(approver, path)

    for index in range(4):
        environment = Environment.objects.create(slug=f"region{index}", name=f"Region {index}", data_kind=DataKind.REAL)
        for n in range(3):
            waiting_request(environment, requester, f"List {index}.{n}")
    many = _queries(approver, path)

    assert many == few
    page = body(approver.get(path))
    assert page.count('data-environment="region') >= 5  # listed, each labelled
