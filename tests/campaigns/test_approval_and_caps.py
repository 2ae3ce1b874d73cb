"""Activation under the approval policy (pilot: an approver), and frequency caps across campaigns."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from campaigns.models import Campaign, CampaignState, Send
from campaigns.sending import freeze
from campaigns.sending.services import campaign_activate
from governance.approvals import approval_approve, approval_execute
from governance.models import ApprovalRequest
from tests.campaigns.support import audience_with, campaign_for, drop, people, run, states
from tests.factories import CampaignFactory, team
from tests.fakes.network import local_targets_allowed

__all__ = ["local_targets_allowed"]


def test_in_pilot_an_activation_waits_for_an_approver_then_runs_as_the_requester(
    actor, pilot, tmp_path, local_targets_allowed
):
    operator, approver = actor("operator", pilot), actor("approver", pilot)
    audience = audience_with(pilot, people(pilot, "pl", 2))
    campaign = campaign_for(operator, audience, drop(pilot, str(tmp_path)))
    outcome = campaign_activate(actor=operator, campaign=campaign)
    assert outcome.approval is not None and outcome.result is None
    assert "2 recipients" in outcome.approval.summary
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.PENDING_APPROVAL
    assert not Send.objects.exists()

    approval_approve(actor=approver, request=ApprovalRequest.objects.get(pk=outcome.approval.pk))
    approval_execute(outcome.approval.pk)
    activated = Campaign.objects.get(pk=campaign.pk)
    assert activated.state == CampaignState.ACTIVE and activated.job_id
    run(activated.job_id)
    assert states(activated) == {"sent": 2}


def test_the_frequency_cap_counts_sends_of_other_campaigns(actor, sandbox, tmp_path):
    operator = actor("operator")
    members = people(sandbox, "fc", 3)
    audience = audience_with(sandbox, members)
    destination = drop(sandbox, str(tmp_path))
    # Two messages to the first member this week from another campaign.
    earlier = CampaignFactory(environment=sandbox, audience=audience, owner_team=team("growth"), state="completed")
    Send.objects.create(campaign=earlier, profile=members[0], state="sent", sent_at=timezone.now(), idempotency_key="a")
    other = CampaignFactory(environment=sandbox, audience=audience, owner_team=team("growth"), state="completed")
    Send.objects.create(
        campaign=other,
        profile=members[0],
        state="sent",
        sent_at=timezone.now() - timedelta(days=1),
        idempotency_key="b",
    )
    # An old one does not count.
    Send.objects.create(
        campaign=other,
        profile=members[1],
        state="sent",
        sent_at=timezone.now() - timedelta(days=30),
        idempotency_key="c",
    )
    campaign = campaign_for(operator, audience, destination, frequency_cap=2, frequency_period_days=7)
    assert freeze.estimate(campaign, audience.live_version) == {
        "members": 3,
        "recipients": 2,
        "skipped": {"frequency_cap": 1},
    }
    run(campaign_activate(actor=operator, campaign=campaign).result.job_id)
    assert states(campaign) == {"sent": 2, "skipped": 1}
    assert Send.objects.get(campaign=campaign, profile=members[0]).reason == "frequency_cap"


def test_an_activation_whose_audience_was_republished_cannot_be_approved(actor, pilot, tmp_path, local_targets_allowed):
    """The approver approved who gets it: a new live version of the audience makes the request stale."""
    import pytest

    from governance.approvals.errors import ApprovalStale
    from tests.factories import AudienceVersionFactory

    operator, approver = actor("operator", pilot), actor("approver", pilot)
    audience = audience_with(pilot, people(pilot, "st", 2))
    campaign = campaign_for(operator, audience, drop(pilot, str(tmp_path)))
    outcome = campaign_activate(actor=operator, campaign=campaign)
    assert outcome.approval is not None

    AudienceVersionFactory(audience=audience, memberships=people(pilot, "st2", 3), live=True)

    with pytest.raises(ApprovalStale):
        approval_approve(actor=approver, request=ApprovalRequest.objects.get(pk=outcome.approval.pk))
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.PENDING_APPROVAL
    assert not Send.objects.exists()
