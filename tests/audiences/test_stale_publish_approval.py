"""A publish request whose audience is edited while it waits (issue 12): the approver's vote
is refused with 409 `approval_stale` (never publishing rules the request did not show), the
request shows what changed in the API, the portal and the admin, and publishing again
replaces it."""

from __future__ import annotations

import pytest

from audiences.models import AudienceVersion
from governance.models import ApprovalPolicy, ApprovalRequest, AuditEvent
from tests.audiences.publish_support import people
from tests.factories import AudienceFactory
from tests.refusals import refused

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]

EU = {"attr": "region", "op": "eq", "value": "EU"}
WIDER = {"attr": "region", "op": "in", "value": ["EU", "UK"]}


@pytest.fixture
def requested(api, pilot):
    """A pilot publish that needs one approval (threshold 0), filed by the operator."""
    ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").update(threshold=0)
    people(pilot, "pilot", 2)
    audience = AudienceFactory(environment=pilot, rules=EU)
    response = api("operator", pilot).post(f"/api/v1/audiences/{audience.pk}/publish", format="json")
    assert response.status_code == 202, response.content
    return audience, ApprovalRequest.objects.get(pk=response.json()["approval"]["id"])


def edit_rules(api, pilot, audience, rules):
    response = api("operator", pilot).patch(f"/api/v1/audiences/{audience.pk}", {"rules": rules}, format="json")
    assert response.status_code == 200, response.content


def test_the_request_keeps_a_snapshot_of_what_it_publishes(requested):
    audience, request = requested
    assert request.change["rules"] == EU and request.change["channel"] == audience.channel
    assert request.change["edited_at"] == audience.updated_at.isoformat()


def test_a_vote_after_the_rules_changed_is_409_approval_stale_and_publishes_nothing(api, pilot, requested):
    audience, request = requested
    edit_rules(api, pilot, audience, WIDER)

    response = api("approver", pilot).post(f"/api/v1/approvals/{request.pk}/approve", {"comment": "ok"}, format="json")

    problem = refused(response, 409, "approval_stale")
    assert "request it again" in problem["hint"]
    assert problem["changes"] == [{"field": "rules", "requested": EU, "now": WIDER}]
    assert not AudienceVersion.objects.filter(audience=audience).exists()
    request.refresh_from_db()
    assert request.state == "pending" and request.is_stale
    assert AuditEvent.objects.filter(action="approval.approve", outcome="denied").count() == 1


def test_the_request_shows_what_changed(api, pilot, requested, client, persona):
    audience, request = requested
    edit_rules(api, pilot, audience, WIDER)

    body = api("approver", pilot).get(f"/api/v1/approvals/{request.pk}").json()

    assert body["is_stale"] is True and "cannot be approved" in body["stale_reason"]
    assert body["changes"] == [{"field": "rules", "requested": EU, "now": WIDER}]
    assert body["you"]["may_vote"] is False and "request it again" in body["you"]["reason"]

    from django.contrib import admin

    from governance.admin.approvals import ApprovalRequestAdmin

    shown = ApprovalRequestAdmin(ApprovalRequest, admin.site).what_changed(request)
    assert shown.startswith("rules: requested") and '"UK"' in shown


def test_the_portal_page_shows_what_changed(api, pilot, requested, persona):
    from django.test import Client

    from governance.access.selectors import SESSION_ENVIRONMENT_KEY

    audience, request = requested
    edit_rules(api, pilot, audience, WIDER)
    browser = Client()
    browser.force_login(persona("approver"))
    session = browser.session
    session[SESSION_ENVIRONMENT_KEY] = "pilot"
    session.save()

    page = browser.get(f"/approvals/{request.pk}/")

    assert page.status_code == 200
    content = page.content.decode()
    assert 'id="stale-changes"' in content and "cannot be approved" in content


def test_publishing_again_replaces_the_stale_request(api, pilot, requested):
    audience, request = requested
    edit_rules(api, pilot, audience, WIDER)

    again = api("operator", pilot).post(f"/api/v1/audiences/{audience.pk}/publish", format="json")

    assert again.status_code == 202, again.content
    new = ApprovalRequest.objects.get(pk=again.json()["approval"]["id"])
    request.refresh_from_db()
    assert request.state == "cancelled" and request.result["superseded_by"] == new.pk
    assert new.change["rules"] == WIDER
    # the new one is approved and publishes what it shows
    voted = api("approver", pilot).post(f"/api/v1/approvals/{new.pk}/approve", {"comment": "ok"}, format="json")
    assert voted.status_code == 200, voted.content
    from governance.approvals import approval_execute

    assert approval_execute(new.pk).state == "executed"
    version = AudienceVersion.objects.get(audience=audience)  # its job builds it after commit
    assert version.rules == WIDER


def test_an_unchanged_audience_still_refuses_a_second_request(api, pilot, requested):
    audience, _ = requested
    again = api("operator", pilot).post(f"/api/v1/audiences/{audience.pk}/publish", format="json")
    assert refused(again, 409, "approval_pending")
