"""The campaigns admin: the lifecycle and the review queue as admin actions, through the
same services as the API (audited through the admin door)."""

from __future__ import annotations

import pytest

from campaigns.models import CampaignState, ReviewItem, Send, SendState
from governance.models import AuditEvent, Door
from tests.factories import CampaignFactory, UserFactory, team


@pytest.fixture
def site(client, db):
    admin_user = UserFactory(username="adm", is_staff=True, groups=["admin"])
    client.force_login(admin_user)
    return client


def _act(site, url: str, action: str, objects) -> str:
    response = site.post(url, {"action": action, "_selected_action": [o.pk for o in objects]}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_pause_from_the_admin(site, sandbox):
    campaign = CampaignFactory(state="active", owner_team=team("growth"))
    assert site.get("/admin/campaigns/campaign/").status_code == 200
    page = _act(site, "/admin/campaigns/campaign/", "pause", [campaign])
    assert "paused" in page
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.PAUSED
    event = AuditEvent.objects.get(action="campaign.pause")
    assert event.door == Door.ADMIN and event.outcome == "allowed"


def test_the_review_queue_in_the_admin(site, sandbox, django_capture_on_commit_callbacks):
    campaign = CampaignFactory(state="partially_succeeded", owner_team=team("growth"))
    item = ReviewItem.objects.create(
        environment=sandbox, campaign=campaign, destination=campaign.destination, recipients=0, why="503"
    )
    assert site.get("/admin/campaigns/reviewitem/").status_code == 200
    _act(site, "/admin/campaigns/reviewitem/", "cancel", [item])
    item.refresh_from_db()
    assert item.state == "cancelled"
    assert AuditEvent.objects.get(action="review_item.cancel").door == Door.ADMIN
    assert not Send.objects.filter(state=SendState.DEFERRED).exists()


def test_activate_resume_and_cancel_from_the_admin(site, sandbox):
    from tests.audiences.publish_support import people
    from tests.campaigns.support import audience_with

    audience = audience_with(sandbox, people(sandbox, "adm", 2))
    campaign = CampaignFactory(environment=sandbox, audience=audience, owner_team=audience.owner_team)
    assert "active" in _act(site, "/admin/campaigns/campaign/", "activate", [campaign])
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.ACTIVE and campaign.job_id
    _act(site, "/admin/campaigns/campaign/", "pause", [campaign])
    assert "sending again" in _act(site, "/admin/campaigns/campaign/", "resume", [campaign])
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.ACTIVE
    _act(site, "/admin/campaigns/campaign/", "cancel", [campaign])
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.CANCELLED
    doors = set(AuditEvent.objects.filter(action__startswith="campaign.").values_list("door", flat=True))
    assert doors == {Door.ADMIN}


def test_retry_from_the_review_queue_in_the_admin(site, sandbox):
    campaign = CampaignFactory(state="partially_succeeded", owner_team=team("growth"))
    item = ReviewItem.objects.create(
        environment=sandbox, campaign=campaign, destination=campaign.destination, recipients=0, why="503"
    )
    assert "queued again" in _act(site, "/admin/campaigns/reviewitem/", "retry", [item])
    item.refresh_from_db()
    campaign.refresh_from_db()
    assert item.state == "retried" and campaign.state == CampaignState.ACTIVE and campaign.job_id
