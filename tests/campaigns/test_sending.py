"""Activation and sending: the frozen recipients, one Send per profile, batches through the
adapter, consent re-checked per batch, a vendor outage deferred into the review queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from campaigns.models import Campaign, CampaignState, ReviewItem, Send
from campaigns.sending.errors import CampaignNotReady, CampaignStateConflict
from campaigns.sending.services import campaign_activate, campaign_cancel, campaign_pause, campaign_resume
from governance.models import AuditEvent, OutboxEvent
from integrations.models import JobState
from tests.audiences.publish_support import set_consent
from tests.campaigns.support import audience_with, campaign_for, drop, people, run, states


def sent_ids(directory: Path) -> list[str]:
    ids = []
    for path in sorted(directory.glob("*.jsonl")):
        ids += [json.loads(line)["external_id"] for line in path.read_text().splitlines() if line]
    return ids


@pytest.fixture
def world(actor, sandbox, tmp_path):
    operator = actor("operator")
    members = people(sandbox, "eu", 5)
    no_consent = people(sandbox, "nc", 2, consent="denied")
    audience = audience_with(sandbox, members + no_consent)
    destination = drop(sandbox, str(tmp_path))
    campaign = campaign_for(operator, audience, destination)
    return operator, campaign, members, no_consent, tmp_path


def test_activate_freezes_and_sends_each_recipient_once(world):
    operator, campaign, members, _no_consent, directory = world
    outcome = campaign_activate(actor=operator, campaign=campaign)
    activated = outcome.result
    assert activated is not None and activated.state == CampaignState.ACTIVE and activated.job_id
    assert AuditEvent.objects.filter(action="campaign.activate", outcome="allowed").count() == 1
    assert OutboxEvent.objects.filter(type="campaign.activated").count() == 1

    job = run(activated.job_id)

    assert job.state == JobState.SUCCEEDED
    assert states(campaign) == {"sent": 5, "skipped": 2}
    assert set(Send.objects.filter(state="skipped").values_list("reason", flat=True)) == {"no_consent"}
    assert sorted(sent_ids(directory)) == sorted(p.external_id for p in members)
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.COMPLETED
    assert OutboxEvent.objects.filter(type="campaign.completed").count() == 1


def test_a_second_activate_never_sends_twice(world):
    operator, campaign, members, _, directory = world
    first = campaign_activate(actor=operator, campaign=campaign).result
    with pytest.raises(CampaignStateConflict):
        campaign_activate(actor=operator, campaign=Campaign.objects.get(pk=campaign.pk))
    run(first.job_id)
    # The job's message delivered again (a retried task) finds nothing to do.
    assert run_again(first.job_id) is None
    assert sorted(sent_ids(directory)) == sorted(p.external_id for p in members)


def run_again(job_id):
    from campaigns.sending.runner import send_job_run

    return send_job_run(job_id)


def test_consent_withdrawn_mid_send_stops_that_profile(world, monkeypatch):
    operator, campaign, _members, _, directory = world
    from campaigns.sending import runner

    monkeypatch.setattr(runner, "batch_size", lambda campaign: 2)
    original = runner.send_batch
    withdrawn = []

    def withdraw_after_first(campaign_row, rows, batch, job):
        outcome = original(campaign_row, rows, batch, job)
        if not withdrawn:
            # Someone still waiting for their message withdraws consent.
            waiting = Send.objects.filter(campaign=campaign_row, state="queued").select_related("profile").first()
            set_consent([waiting.profile], "denied")
            withdrawn.append(waiting.profile)
        return outcome

    monkeypatch.setattr(runner, "send_batch", withdraw_after_first)
    job = campaign_activate(actor=operator, campaign=campaign).result.job_id
    run(job)
    assert states(campaign) == {"sent": 4, "skipped": 3}
    stopped = Send.objects.get(campaign=campaign, profile=withdrawn[0])
    assert (stopped.state, stopped.reason) == ("skipped", "withdrawn_mid_send")
    assert withdrawn[0].external_id not in sent_ids(directory)


def test_pause_stops_within_one_batch_and_resume_sends_the_rest(world, monkeypatch):
    operator, campaign, members, _, directory = world
    from campaigns.sending import runner

    monkeypatch.setattr(runner, "batch_size", lambda campaign: 2)
    original = runner.send_batch

    def pause_after_first(campaign_row, rows, batch, job):
        outcome = original(campaign_row, rows, batch, job)
        if batch == 1:
            campaign_pause(actor=operator, campaign=Campaign.objects.get(pk=campaign.pk))
        return outcome

    monkeypatch.setattr(runner, "send_batch", pause_after_first)
    job = campaign_activate(actor=operator, campaign=campaign).result.job_id
    run(job)
    assert states(campaign) == {"sent": 2, "queued": 3, "skipped": 2}
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.PAUSED

    monkeypatch.setattr(runner, "send_batch", original)
    resumed = campaign_resume(actor=operator, campaign=Campaign.objects.get(pk=campaign.pk))
    run(resumed.job_id)
    assert states(campaign) == {"sent": 5, "skipped": 2}
    assert sorted(sent_ids(directory)) == sorted(p.external_id for p in members)


def test_cancel_skips_what_is_still_queued(world):
    operator, campaign, *_ = world
    job = campaign_activate(actor=operator, campaign=campaign).result.job_id
    from campaigns.sending import freeze

    fresh = Campaign.objects.select_related("version", "environment").get(pk=campaign.pk)
    freeze.freeze(fresh, fresh.version)
    cancelled = campaign_cancel(actor=operator, campaign=fresh)
    assert cancelled.state == CampaignState.CANCELLED
    assert run(job).state == JobState.CANCELLED
    assert states(campaign) == {"skipped": 7}
    assert Send.objects.filter(reason="cancelled").count() == 5


def test_empty_audience_is_not_ready_and_nothing_is_written(actor, sandbox, tmp_path):
    operator = actor("operator")
    campaign = campaign_for(operator, audience_with(sandbox, []), drop(sandbox, str(tmp_path)))
    with pytest.raises(CampaignNotReady) as refused:
        campaign_activate(actor=operator, campaign=campaign)
    codes = {e["code"] for e in refused.value.errors}
    assert {"audience_not_empty", "recipient_estimate"} <= codes
    assert all(e["hint"] for e in refused.value.errors)
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.DRAFT
    assert not Send.objects.exists() and not ReviewItem.objects.exists()
    assert not AuditEvent.objects.filter(action="campaign.activate").exists()


def test_the_recovery_sweep_finds_send_jobs_whose_worker_died_or_kick_was_lost(sandbox):
    from datetime import timedelta

    from django.utils import timezone

    from campaigns.sending.runner import send_jobs_recover
    from tests.factories import JobFactory

    now = timezone.now()
    lost_kick = JobFactory(kind="campaign.send", created_at=now - timedelta(minutes=5))
    fresh = JobFactory(kind="campaign.send", created_at=now)
    dead = JobFactory(kind="campaign.send", running=True, heartbeat_at=now - timedelta(hours=1))
    alive = JobFactory(kind="campaign.send", running=True, heartbeat_at=now)
    other = JobFactory(kind="destination.push", created_at=now - timedelta(minutes=5))
    found = set(send_jobs_recover(now=now))
    assert {lost_kick.pk, dead.pk} <= found
    assert not found & {fresh.pk, alive.pk, other.pk}
