"""The payload preview: what a destination would receive, built by the adapter that sends —
equal to what a fake vendor receives; secrets redacted; PII masked unless the role may see it."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import transaction
from waffle.models import Flag

from campaigns.models import Campaign
from campaigns.sending.services import send_job_create
from governance.actors import Actor
from governance.models import AuditEvent, Door
from tests.campaigns.support import audience_with, people, run
from tests.factories import CampaignFactory, DestinationFactory, team
from tests.fakes.helpers import BRAZE_CREDENTIALS, braze_config
from tests.fakes.network import local_targets_allowed, loopback_only, resolver

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state", "sleeps", "resolver", "loopback_only", "local_targets_allowed")
__all__ = ["local_targets_allowed", "loopback_only", "resolver"]


@pytest.fixture(autouse=True)
def fresh_flag_cache():
    """waffle caches flags; rows rolled back between tests must not linger in the cache."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def flag_on(db):
    Flag.objects.update_or_create(name="destination_payload_preview", defaults={"everyone": True})


@pytest.fixture
def braze_campaign(pilot, braze):
    members = people(pilot, "pv", 3)
    audience = audience_with(pilot, members)
    destination = DestinationFactory(
        environment=pilot, adapter="engagement", config=braze_config(braze), credentials=dict(BRAZE_CREDENTIALS)
    )
    campaign = CampaignFactory(
        environment=pilot,
        audience=audience,
        owner_team=team("growth"),
        destination=destination,
        state="active",
        version=audience.live_version,
    )
    return campaign, destination, members


def test_the_preview_equals_what_the_vendor_receives(api, pilot, braze, braze_campaign, flag_on):
    campaign, destination, members = braze_campaign
    client = api("compliance", pilot)  # may see PII: nothing is masked, so the bodies compare exactly
    answer = client.post(
        f"/api/v1/destinations/{destination.pk}/preview", {"campaign": campaign.pk, "sample": 3}, format="json"
    )
    assert answer.status_code == 200, answer.json()
    preview = answer.json()
    assert preview["operation"] == "send" and preview["pii_masked"] is False and preview["batch_size"] == 50
    assert AuditEvent.objects.filter(action="profile.pii_read").count() == 1

    with transaction.atomic():
        job = send_job_create(Campaign.objects.get(pk=campaign.pk), Actor.system(pilot, door=Door.TASK))
    run(job)
    sent = braze.calls("/campaigns/trigger/send")
    assert len(sent) == len(preview["requests"]) == 1
    for shown, received in zip(preview["requests"], sent, strict=True):
        assert shown["method"] == received.method
        assert shown["url"] == braze.url + received.path
        assert shown["body"] == received.json
        assert shown["headers"]["authorization"] == "Bearer [redacted]"
        assert received.headers["authorization"] == f"Bearer {BRAZE_CREDENTIALS['api_key']}"
        assert BRAZE_CREDENTIALS["api_key"] not in str(shown)
    assert {r["external_user_id"] for r in sent[0].json["recipients"]} == {m.external_id for m in members}


def test_the_preview_is_masked_for_a_marketer_and_sends_nothing(api, pilot, braze, braze_campaign, flag_on):
    campaign, destination, _members = braze_campaign
    preview = (
        api("operator", pilot)
        .post(f"/api/v1/destinations/{destination.pk}/preview", {"campaign": campaign.pk}, format="json")
        .json()
    )
    assert preview["pii_masked"] is True
    rendered = str(preview["requests"][0]["body"])
    assert "Ann" not in rendered  # first names are masked in the rendered message
    assert braze.calls() == []
    assert not AuditEvent.objects.filter(action="profile.pii_read").exists()


def test_an_audience_preview_shows_the_members_push(api, pilot, braze, braze_campaign, flag_on):
    campaign, destination, _members = braze_campaign
    preview = (
        api("developer", pilot)
        .post(
            f"/api/v1/destinations/{destination.pk}/preview",
            {"audience": campaign.audience_id, "sample": 2},
            format="json",
        )
        .json()
    )
    assert preview["operation"] == "members" and preview["sample"] == 2
    (request,) = preview["requests"]
    assert request["url"].endswith("/users/track") and len(request["body"]["attributes"]) == 2


@pytest.mark.parametrize(
    ("body", "status"),
    [({"campaign": 1, "audience": 1}, 422), ({"sample": 5}, 422), ({"campaign": 1, "sample": 21}, 422)],
)
def test_bad_preview_requests(api, pilot, braze_campaign, flag_on, body, status):
    _, destination, _ = braze_campaign
    answer = api("operator", pilot).post(f"/api/v1/destinations/{destination.pk}/preview", body, format="json")
    assert answer.status_code == status and answer.json()["hint"]


def test_the_preview_is_behind_its_flag(api, pilot, braze_campaign):
    campaign, destination, _ = braze_campaign
    answer = api("operator", pilot).post(
        f"/api/v1/destinations/{destination.pk}/preview", {"campaign": campaign.pk}, format="json"
    )
    assert answer.status_code == 403 and "destination_payload_preview" in answer.json()["detail"]
