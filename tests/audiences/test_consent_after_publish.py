"""Consent withdrawn after publish (issue 13): a consent sync that withdraws a channel takes
the person out of every live version of that channel in the environment at once — one
DELETE per sync, recorded on each version, audited with the sync — and queues the removal
for the connected destinations."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audiences.models import AudienceVersion, Membership
from audiences.profiles.services import consent_sync
from governance.models import AuditEvent
from integrations.destinations.runner import destination_job_run
from integrations.models import DestinationPush, Job
from tests.factories import AudienceFactory, DestinationFactory, ProfileFactory


def _update(external_id: str, status: str, channel: str = "email", captured_at=None) -> dict:
    return {
        "external_id": external_id,
        "channel": channel,
        "status": status,
        "source": "preference_center",
        "captured_at": captured_at or timezone.now(),
    }


@pytest.fixture
def world(sandbox, pilot, tmp_path):
    ann, bob = (ProfileFactory(environment=sandbox, external_id=x, consent="granted") for x in ("ann", "bob"))
    email_a = AudienceFactory(environment=sandbox, published=[ann, bob])
    email_b = AudienceFactory(environment=sandbox, published=[ann])
    sms = AudienceFactory(environment=sandbox, channel="sms", published=[ann, bob])
    pilot_ann = ProfileFactory(environment=pilot, external_id="ann", consent="granted")
    elsewhere = AudienceFactory(environment=pilot, published=[pilot_ann])
    destination = DestinationFactory(environment=sandbox, config={"directory": str(tmp_path), "format": "jsonl"})
    return {"ann": ann, "bob": bob, "a": email_a, "b": email_b, "sms": sms, "pilot": elsewhere, "dest": destination}


def members(audience) -> set[str]:
    audience.refresh_from_db()
    return set(
        Membership.objects.filter(version_id=audience.live_version_id).values_list("profile__external_id", flat=True)
    )


def test_a_withdrawal_removes_the_person_from_every_live_version_of_the_channel(actor, world):
    with CaptureQueriesContext(connection) as queries:
        outcome = consent_sync(actor=actor("developer"), updates=[_update("ann", "denied")])

    assert outcome.removed_from_audiences == 2
    assert members(world["a"]) == {"bob"} and members(world["b"]) == set()
    assert members(world["sms"]) == {"ann", "bob"}, "sms consent was not withdrawn"
    assert members(world["pilot"]) == {"ann"}, "another environment's ann is another profile"
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE FROM")]
    assert len(deletes) == 1, deletes

    version_a = AudienceVersion.objects.get(pk=world["a"].live_version_id)
    assert (version_a.members, version_a.withdrawn) == (1, 1)
    audit = AuditEvent.objects.get(action="consent.sync")
    assert audit.changes["removed_from_audiences"] == 2
    assert audit.changes["live_versions"]["memberships"] == 2
    assert audit.changes["live_versions"]["removed_by_version"] == {
        str(world["a"].live_version_id): 1,
        str(world["b"].live_version_id): 1,
    }


def test_the_removal_is_queued_for_the_destinations_and_delivered(actor, world):
    consent_sync(actor=actor("developer"), updates=[_update("ann", "denied"), _update("bob", "granted")])

    push = DestinationPush.objects.get(destination=world["dest"])
    assert push.payload == {"added": [], "removed": ["ann"]}
    job = Job.objects.get(pk=push.job_id)
    assert job.kind == "destination.push"
    assert AuditEvent.objects.get(action="consent.sync").changes["live_versions"]["delivery_job"] == job.pk

    finished = destination_job_run(job.pk)
    assert finished is not None and finished.state == "succeeded"


def test_granting_or_a_stale_withdrawal_removes_nobody(actor, world):
    past = timezone.now() - timezone.timedelta(days=30)
    outcome = consent_sync(
        actor=actor("developer"), updates=[_update("bob", "granted"), _update("ann", "denied", captured_at=past)]
    )

    assert outcome.removed_from_audiences == 0 and outcome.stale == 1
    assert members(world["a"]) == {"ann", "bob"}
    assert not DestinationPush.objects.exists()
    assert "live_versions" not in AuditEvent.objects.get(action="consent.sync").changes
