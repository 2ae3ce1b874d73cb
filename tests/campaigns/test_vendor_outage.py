"""A vendor that is down: batches are deferred, never dropped; after the retry budget the
campaign is partially_succeeded and the rest waits in the manual review queue; a retry
after recovery sends each remaining recipient exactly once."""

from __future__ import annotations

from collections import Counter

import pytest

from campaigns.models import Campaign, CampaignState, ReviewItem
from campaigns.sending.services import campaign_activate
from governance.models import AuditEvent
from integrations.destinations import breakers
from integrations.models import JobState
from tests.campaigns.support import audience_with, campaign_for, people, run, states
from tests.factories import DestinationFactory

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state", "sleeps")


@pytest.fixture
def outage(actor, sandbox, server):
    operator = actor("operator")
    members = people(sandbox, "eu", 5)
    hook = DestinationFactory(
        environment=sandbox, adapter="webhook", config={"url": server.url + "/hook", "batch_size": 2}
    )
    campaign = campaign_for(operator, audience_with(sandbox, members), hook)
    return operator, campaign, members


def test_a_503_storm_ends_partially_succeeded_and_a_retry_sends_the_rest_once(outage, server, api):
    operator, campaign, members = outage
    server.script(200, times=1)  # the first batch goes through, then the vendor falls over
    server.always(503)
    job = run(campaign_activate(actor=operator, campaign=campaign).result.job_id)

    assert job.state == JobState.PARTIALLY_SUCCEEDED
    assert job.warnings[0]["code"] == "sends_deferred" and "review" in job.warnings[0]["hint"]
    assert states(campaign) == {"sent": 2, "deferred": 3}
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.PARTIALLY_SUCCEEDED
    item = ReviewItem.objects.get(campaign=campaign)
    assert item.recipients == 3 and item.state == "open" and "did not take" in item.why

    client = api("operator")
    listed = client.get("/api/v1/review-items/").json()["results"]
    assert [(i["id"], i["recipients"], i["campaign"]["id"]) for i in listed] == [(item.pk, 3, campaign.pk)]
    payload = client.get(f"/api/v1/review-items/{item.pk}/payload").json()
    assert payload["pii_masked"] is True and len(payload["payload"]["recipients"]) == 3
    assert all("@example.test" not in r.get("email", "") for r in payload["payload"]["recipients"])
    assert AuditEvent.objects.filter(action="review_item.download").count() == 1

    # The vendor recovers; the operator retries from the queue.
    server.heal()
    breakers.clear_all()
    first_wave = len(server.requests)
    retried = client.post(f"/api/v1/review-items/{item.pk}/retry")
    assert retried.status_code == 200 and retried.json()["state"] == "retried"
    again = run(Campaign.objects.get(pk=campaign.pk).job_id)
    assert again.state == JobState.SUCCEEDED
    assert states(campaign) == {"sent": 5}
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.COMPLETED
    # Every recipient was accepted exactly once: the first batch in the first wave, the rest after.
    accepted = Counter()
    for request in server.requests[:1] + server.requests[first_wave:]:
        for recipient in (request.json or {}).get("recipients", []):
            accepted[recipient["external_id"]] += 1
    assert accepted == Counter({m.external_id: 1 for m in members})
    assert client.post(f"/api/v1/review-items/{item.pk}/retry").json()["code"] == "review_item_closed"


def test_cancel_from_the_review_queue_skips_the_rest(outage, server, api):
    operator, campaign, _members = outage
    server.always(503)
    run(campaign_activate(actor=operator, campaign=campaign).result.job_id)
    item = ReviewItem.objects.get(campaign=campaign)
    outsider = api("operator2")
    refused = outsider.post(f"/api/v1/review-items/{item.pk}/cancel")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    cancelled = api("operator").post(f"/api/v1/review-items/{item.pk}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert states(campaign) == {"skipped": 5}
