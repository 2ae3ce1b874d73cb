"""The one members runner (integrations/destinations/runner.py): `members_push` queues a
diff as pushes of the caller's job, `job_pushes_run` runs them once and says what the job
should show — the path publishing takes, and the one a delivery job of its own takes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import transaction

from integrations.destinations import runner
from integrations.jobs import services as jobs
from integrations.models import Destination, DestinationPush, JobState, PushState
from tests.factories import DestinationFactory
from tests.fakes.helpers import BRAZE_CREDENTIALS, braze_config

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")


@pytest.fixture
def engagement(pilot, braze):
    return DestinationFactory(
        environment=pilot, adapter="engagement", config=braze_config(braze), credentials=BRAZE_CREDENTIALS, name="Braze"
    )


@pytest.fixture
def drop(pilot, tmp_path):
    return DestinationFactory(environment=pilot, adapter="file", config={"directory": str(tmp_path)}, name="sftp-drop")


def publish_job(environment):
    """A job of another kind than destination.push, as publishing has (running, like a publish
    that has gone live and is about to deliver)."""
    job = jobs.job_create(environment=environment, kind="audience.publish", target=("audiences.audience", "7"))
    return jobs.job_claim(job.pk)


def ids(prefix: str, n: int) -> Iterator[str]:
    return (f"{prefix}{i}" for i in range(n))


def test_the_diff_is_queued_removed_first_in_batches_for_each_active_destination(pilot, engagement, drop):
    off = DestinationFactory(environment=pilot, adapter="file", config={"directory": "/tmp"}, name="switched-off")
    Destination.objects.filter(pk=off.pk).update(is_active=False)
    job = publish_job(pilot)

    with transaction.atomic():
        created = runner.members_push(environment=pilot, job=job, added=ids("a", 5), removed=ids("r", 3), batch_size=2)

    # removed in 2 batches, then added in 3, each for both active destinations, in that order
    assert created == 10
    pushes = list(DestinationPush.objects.filter(job=job).order_by("id"))
    assert [(p.destination.name, p.payload["removed"], p.payload["added"]) for p in pushes[:4]] == [
        ("Braze", ["r0", "r1"], []),
        ("sftp-drop", ["r0", "r1"], []),
        ("Braze", ["r2"], []),
        ("sftp-drop", ["r2"], []),
    ]
    assert [p.payload["added"] for p in pushes[4::2]] == [["a0", "a1"], ["a2", "a3"], ["a4"]]
    assert {p.kind for p in pushes} == {"members"} and {p.state for p in pushes} == {PushState.PENDING}


def test_without_an_active_destination_nothing_is_queued_and_the_diff_is_not_read(pilot):
    def never() -> Iterator[str]:
        raise AssertionError("the diff was read")
        yield ""  # pragma: no cover

    job = publish_job(pilot)

    assert runner.members_push(environment=pilot, job=job, added=never(), removed=never()) == 0
    assert not DestinationPush.objects.filter(job=job).exists()


def test_a_destination_of_another_environment_is_refused(pilot, production):
    other = DestinationFactory(environment=production, adapter="file", config={"directory": "/tmp"}, name="elsewhere")

    with pytest.raises(ValueError, match="another environment"):
        runner.members_push(environment=pilot, job=publish_job(pilot), added=["a"], destinations=[other])


def test_running_the_pushes_reports_one_deferral_per_destination_and_a_summary(pilot, engagement, drop, braze, sleeps):
    # given a diff of three pushes per destination, and Braze down
    braze.always(503, {"message": "Service Unavailable"})
    job = publish_job(pilot)
    runner.members_push(environment=pilot, job=job, added=[f"a{i}" for i in range(5)], batch_size=2)
    progress: list[tuple[int, int]] = []

    # when the job's pushes run once
    report = runner.job_pushes_run(job, on_progress=lambda done, total: progress.append((done, total)))

    # then Braze is one warning however many pushes wait, the file drop got everything
    (warning,) = report.warnings
    assert warning["code"] == "destination_deferred" and warning["destination"]["name"] == "Braze"
    assert warning["retry_at"] and warning["resolved_at"] is None
    assert report.errors == [] and report.delivered_any
    braze_entry = report.destinations[str(engagement.pk)]
    assert (braze_entry["pushes"], braze_entry["delivered"], braze_entry["state"]) == (3, 0, "deferred")
    assert "retry_at" in braze_entry
    assert report.destinations[str(drop.pk)] == {"name": "sftp-drop", "pushes": 3, "delivered": 5, "state": "succeeded"}
    assert progress == [(i, 6) for i in range(1, 7)]


def test_what_publishing_does_with_it_end_to_end(pilot, engagement, braze, sleeps):
    """Queue in the transaction that makes the version live, run after it, finish the job with
    the report; the sweep delivers the deferred work later and resolves the job's warning."""
    braze.always(503)
    job = publish_job(pilot)
    with transaction.atomic():
        runner.members_push(environment=pilot, job=job, added=ids("m", 3), removed=ids("x", 1))

    report = runner.job_pushes_run(job)
    finished = jobs.job_finish(
        job, warnings=report.warnings, errors=report.errors, result={"destinations": report.destinations}
    )

    assert finished.state == JobState.PARTIALLY_SUCCEEDED
    (warning,) = finished.warnings
    assert warning["code"] == "destination_deferred" and warning["resolved_at"] is None

    braze.heal()
    later = max(p.next_attempt_at for p in DestinationPush.objects.filter(job=job)) + timedelta(seconds=1)
    counts = runner.pushes_run_due(now=later)

    assert counts["succeeded"] == 2
    assert sorted(braze.users) == ["m0", "m1", "m2"]
    assert braze.subscriptions["sg-1"]["x0"] == "unsubscribed"
    finished.refresh_from_db()
    assert finished.state == JobState.PARTIALLY_SUCCEEDED  # a finished job stays finished…
    assert all(w["resolved_at"] for w in finished.warnings)  # …and says the deferred work arrived


def test_a_delivery_job_of_its_own_takes_the_same_path(pilot, engagement, drop, braze, sleeps):
    job = runner.members_delivery_start(environment=pilot, added=["m1", "m2"], removed=["old"], enqueue=False)

    finished = runner.destination_job_run(job.pk)

    assert finished.kind == runner.JOB_KIND and finished.state == JobState.SUCCEEDED
    # the whole diff in one push per destination
    assert DestinationPush.objects.filter(job=job).count() == 2
    assert finished.result["destinations"][str(engagement.pk)] == {
        "name": "Braze",
        "pushes": 1,
        "delivered": 3,
        "state": "succeeded",
    }
