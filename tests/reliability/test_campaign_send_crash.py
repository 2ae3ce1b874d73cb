"""SIGKILL a campaign sender after the vendor accepted a batch but before the rows were
marked: after the job is taken over every recipient is delivered exactly once — the
interrupted batch goes again under the same Idempotency-Key, which the receiver deduplicates.

A real process is killed, so this runs on PostgreSQL (skipped on SQLite, failed with
REQUIRE_SERVICES=1).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from campaigns.models import Campaign, CampaignState, Send
from campaigns.sending.runner import send_job_run
from campaigns.sending.services import campaign_activate
from integrations.models import Job, JobState
from tests.audiences.publish_support import people
from tests.campaigns.support import audience_with, campaign_for
from tests.conftest import require_service
from tests.factories import DestinationFactory
from tests.fakes.server import FakeServer
from tests.reliability.fixtures import HeldProcess

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def postgres(django_db_serialized_rollback, transactional_db):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "the crash test kills a process that holds a job; set DATABASE_URL")


def Sender(job_id: int) -> HeldProcess:
    """`python -m tests.reliability.campaign_sender_process JOB` on the test database."""
    return HeldProcess("tests.reliability.campaign_sender_process", str(job_id), name="sender", hook_timeout=90)


def test_a_sender_killed_mid_send_delivers_each_recipient_exactly_once(postgres, actor, sandbox, monkeypatch):
    from campaigns.sending import services

    monkeypatch.setattr(services, "_enqueue_after_commit", lambda job_id: None)  # the test drives every step
    operator = actor("operator")
    members = people(sandbox, "kill", 6)
    with FakeServer() as server:
        hook = DestinationFactory(
            environment=sandbox, adapter="webhook", config={"url": server.url + "/hook", "batch_size": 2}
        )
        campaign = campaign_for(operator, audience_with(sandbox, members), hook)
        with transaction.atomic():
            job_id = campaign_activate(actor=operator, campaign=campaign).result.job_id

        sender = Sender(job_id)
        sender.wait_for_hook()
        sender.kill()

        # Batch 1 marked sent, batch 2 accepted by the vendor but still `sending`, batch 3 queued.
        counts = dict(Send.objects.filter(campaign=campaign).values_list("state").annotate(n=Count("pk")))
        assert counts == {"sent": 2, "sending": 2, "queued": 2}
        assert Job.objects.get(pk=job_id).state == JobState.RUNNING

        # The job is taken over once its heartbeat is stale (a redelivered task or the sweep).
        later = timezone.now() + timedelta(seconds=settings.JOB_SLOT_STALE_SECONDS + 5)
        assert send_job_run(job_id, now=timezone.now()) is None  # heartbeat still fresh: not taken over
        finished = send_job_run(job_id, now=later)
        assert finished is not None and finished.state == JobState.SUCCEEDED

        assert set(Send.objects.filter(campaign=campaign).values_list("state", flat=True)) == {"sent"}
        assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.COMPLETED
        keys_by_recipient: dict[str, set[str]] = defaultdict(set)
        for request in server.calls("/hook"):
            for recipient in request.json["recipients"]:
                keys_by_recipient[recipient["external_id"]].add(request.headers["idempotency-key"])
        # Everyone reached the receiver; a recipient sent twice came under one key (deduplicated).
        assert set(keys_by_recipient) == {m.external_id for m in members}
        assert all(len(keys) == 1 for keys in keys_by_recipient.values()), keys_by_recipient
        assert len(server.calls("/hook")) == 4  # batches 1, 2, 2 again (same key), 3
