"""Delivering work to destinations, and graceful degradation: a destination that is down
gets its work deferred (not dropped), the job ends partially_succeeded with a warning
that says what happens next, and the deferred work is delivered later."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.actors import Actor
from governance.models import Door
from integrations.destinations import breakers, pushing, runner
from integrations.destinations import services as destinations
from integrations.jobs import selectors as job_selectors
from integrations.jobs import services as jobs
from integrations.models import DeadLetter, Destination, DestinationPush, JobState, PushState
from integrations.webhooks import services as webhooks
from tests.factories import DestinationFactory
from tests.fakes.braze import FakeBraze
from tests.fakes.helpers import BRAZE_CREDENTIALS, braze_config

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")


def members(n: int) -> list[dict]:
    return [{"external_id": f"m{i}", "email": f"m{i}@example.test"} for i in range(n)]


@pytest.fixture
def engagement(pilot, braze):
    return DestinationFactory(
        environment=pilot, adapter="engagement", config=braze_config(braze), credentials=BRAZE_CREDENTIALS, name="Braze"
    )


@pytest.fixture
def drop(pilot, tmp_path):
    return DestinationFactory(environment=pilot, adapter="file", config={"directory": str(tmp_path)}, name="sftp-drop")


def start(environment, added=(), removed=(), destinations_=None):
    return runner.members_delivery_start(
        environment=environment,
        added=list(added),
        removed=list(removed),
        destinations=destinations_,
        enqueue=False,
    )


def test_everything_delivered_is_a_succeeded_job(pilot, engagement, drop, braze, sleeps, tmp_path):
    job = start(pilot, members(200), ["old-1"])

    finished = runner.destination_job_run(job.pk)

    assert finished.state == JobState.SUCCEEDED
    assert finished.warnings == [] and finished.errors == []
    assert finished.result["destinations"][str(engagement.pk)]["delivered"] == 201
    assert finished.progress == {"done": 2, "total": 2}
    assert len(braze.users) == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"marketerapi-push-{p.pk}-{phase}-0001.jsonl"
        for p in DestinationPush.objects.filter(destination=drop)
        for phase in ("added", "removed")
    ]
    engagement.refresh_from_db()
    assert engagement.last_success_at is not None


def test_a_destination_that_is_down_defers_its_work_and_the_job_partially_succeeds(
    pilot, engagement, drop, braze, sleeps
):
    braze.always(503, {"message": "Service Unavailable"})
    job = start(pilot, members(12_000))

    finished = runner.destination_job_run(job.pk)

    assert finished.state == JobState.PARTIALLY_SUCCEEDED
    (warning,) = finished.warnings
    assert warning["code"] == "destination_deferred"
    assert warning["destination"] == {"id": engagement.pk, "name": "Braze", "adapter": "engagement"}
    message = warning["message"]
    assert message.startswith("Braze is unavailable (3 failures, last: 503")
    assert "12,000 added members are queued and will be retried from " in message
    assert message.endswith("nothing was lost.")
    assert "health" in warning["hint"] and warning["resolved_at"] is None
    assert finished.errors == []
    results = finished.result["destinations"]
    assert results[str(drop.pk)]["state"] == "succeeded"
    assert results[str(engagement.pk)]["state"] == "deferred"

    push = DestinationPush.objects.get(destination=engagement)
    assert push.state == PushState.DEFERRED and push.attempts == 1
    assert push.next_attempt_at > timezone.now()
    assert len(push.payload["added"]) == 12_000  # kept whole: nothing dropped
    engagement.refresh_from_db()
    assert engagement.last_failure_at is not None and "unavailable" in engagement.last_error


def test_retries_open_the_breaker_then_wait_for_it_and_later_deliver_everything(pilot, engagement, braze, sleeps):
    braze.always(503)
    job = start(pilot, members(300), ["gone-1", "gone-2"], [engagement])
    runner.destination_job_run(job.pk)
    push = DestinationPush.objects.get(destination=engagement)

    # The second attempt adds two failures: the breaker opens and the push waits for it.
    second = push.next_attempt_at + timedelta(seconds=1)
    outcome = pushing.push_run(push.pk, now=second)
    assert outcome.state == PushState.DEFERRED
    assert "Braze is unavailable (5 failures, last: 503" in outcome.error
    snap = breakers.Breaker.for_destination(engagement).snapshot(now=second.timestamp())
    assert snap.state == "open"
    push.refresh_from_db()
    assert push.next_attempt_at >= snap.retry_at

    # While open, the sweep does not call the vendor and spends no attempt.
    calls = len(braze.requests)
    attempts = push.attempts
    assert runner.pushes_run_due(now=second + timedelta(seconds=5)) == {
        "run": 0,
        "succeeded": 0,
        "deferred": 0,
        "failed": 0,
    }
    assert len(braze.requests) == calls and DestinationPush.objects.get(pk=push.pk).attempts == attempts

    # The vendor is back; after the cool-down the sweep delivers everything (half-open trial, then closed).
    braze.heal()
    later = push.next_attempt_at + timedelta(seconds=1)
    counts = runner.pushes_run_due(now=later)

    assert counts["succeeded"] == 1
    assert len(braze.users) == 300
    assert braze.subscriptions["sg-1"]["gone-2"] == "unsubscribed"
    assert breakers.Breaker.for_destination(engagement).snapshot(now=later.timestamp()).state == "closed"
    job.refresh_from_db()
    assert job.state == JobState.PARTIALLY_SUCCEEDED  # a finished job stays finished…
    (warning,) = job.warnings
    assert warning["resolved_at"] is not None  # …and says the deferred work arrived
    assert "Delivered at" in warning["resolution"]
    assert job.result["destinations"][str(engagement.pk)]["state"] == "succeeded"


def test_an_open_breaker_defers_new_work_without_calling_the_vendor(pilot, engagement, braze, sleeps):
    breaker = breakers.Breaker.for_destination(engagement)
    for _ in range(5):
        breaker.record_failure("503")
    job = start(pilot, members(10), destinations_=[engagement])

    finished = runner.destination_job_run(job.pk)

    assert braze.requests == []
    assert finished.state == JobState.PARTIALLY_SUCCEEDED
    assert "Braze is unavailable (5 failures, last: 503)" in finished.warnings[0]["message"]
    push = DestinationPush.objects.get(destination=engagement)
    assert push.state == PushState.DEFERRED and push.attempts == 0
    assert push.next_attempt_at == breaker.snapshot().retry_at


def test_a_vendor_4xx_fails_the_push_into_the_dead_letter_list(pilot, braze, sleeps, persona):
    wrong = DestinationFactory(
        environment=pilot,
        adapter="engagement",
        config=braze_config(braze),
        credentials={"api_key": "wrong-key-000"},
        name="Braze",
    )
    job = start(pilot, members(5), destinations_=[wrong])

    finished = runner.destination_job_run(job.pk)

    assert finished.state == JobState.FAILED
    (error,) = finished.errors
    assert error["code"] == "destination_rejected" and "401" in error["message"]
    assert "5 added members were not delivered" in error["message"]
    assert "credentials" in error["hint"] and f"/dead-letters/{error['dead_letter_id']}/replay" in error["hint"]
    assert "wrong-key-000" not in str(finished.errors)
    letter = DeadLetter.objects.get(pk=error["dead_letter_id"])
    assert letter.kind == "destination_push" and letter.environment == pilot
    assert breakers.Breaker.for_destination(wrong).snapshot().failures == 0

    # Fix the key, replay the dead letter: delivered.
    admin = Actor(user=persona("admin"), environment=pilot, door=Door.API)
    destinations.destination_update(actor=admin, destination=wrong, credentials=dict(BRAZE_CREDENTIALS))
    webhooks.dead_letter_replay(actor=admin, dead_letter=letter)
    push = DestinationPush.objects.get(destination=wrong)
    assert push.state == PushState.PENDING and push.attempts == 0

    assert pushing.push_run(push.pk).state == PushState.SUCCEEDED
    assert len(braze.users) == 5


def test_rows_the_vendor_refuses_are_a_warning_naming_them(pilot, engagement, braze, sleeps):
    braze.bad_ids = {"m3"}
    finished = runner.destination_job_run(start(pilot, members(10), destinations_=[engagement]).pk)

    assert finished.state == JobState.PARTIALLY_SUCCEEDED
    (warning,) = finished.warnings
    assert warning["code"] == "rows_rejected" and "did not take 1 row(s)" in warning["message"]
    assert warning["rows"][0]["external_id"] == "m3"


def test_rate_limiting_defers_until_the_reset_without_tripping_the_breaker(pilot, engagement, braze, sleeps):
    braze.rate_limit(times=50, reset_in=300)
    job = start(pilot, members(3), destinations_=[engagement])
    before = timezone.now()

    finished = runner.destination_job_run(job.pk)

    assert finished.state == JobState.PARTIALLY_SUCCEEDED
    assert "rate limiting" in finished.warnings[0]["message"]
    push = DestinationPush.objects.get(destination=engagement)
    assert push.state == PushState.DEFERRED
    assert push.next_attempt_at >= before + timedelta(seconds=250)
    assert breakers.Breaker.for_destination(engagement).snapshot().state == "closed"


class FailsAfterTwoBatches(FakeBraze):
    """users/track answers the first two calls, then 503 until healed."""

    def handle(self, request):
        if (
            request.path == "/users/track"
            and len(self.calls("/users/track")) > 2
            and not getattr(self, "healed", False)
        ):
            return 503, {}, {"message": "down"}
        return super().handle(request)


def test_a_deferred_push_resumes_after_the_last_delivered_batch(pilot, sleeps, monkeypatch):
    monkeypatch.setattr(pushing, "PROGRESS_EVERY", 0.0)
    with FailsAfterTwoBatches() as fake:
        dest = DestinationFactory(
            environment=pilot,
            adapter="engagement",
            config=braze_config(fake),
            credentials=BRAZE_CREDENTIALS,
            name="Braze",
        )
        job = start(pilot, members(300), destinations_=[dest])
        runner.destination_job_run(job.pk)
        push = DestinationPush.objects.get(destination=dest)
        assert push.state == PushState.DEFERRED
        assert push.payload["progress"] == {"added": 150}
        assert "150 added members are queued" in push.last_error

        fake.healed = True
        first_ids = [c.json["attributes"][0]["external_id"] for c in fake.calls("/users/track")]
        pushing.push_run(push.pk, now=push.next_attempt_at + timedelta(seconds=1))

        resent = [c.json["attributes"][0]["external_id"] for c in fake.calls("/users/track")][len(first_ids) :]
        assert resent == ["m150", "m225"]
        assert len(fake.users) == 300


def test_work_that_keeps_failing_ends_in_the_dead_letter_list_not_the_bin(
    pilot, engagement, braze, sleeps, monkeypatch, settings
):
    monkeypatch.setattr(pushing, "MAX_ATTEMPTS", 2)
    settings.DESTINATION_BREAKER_THRESHOLD = 100
    braze.always(503)
    job = start(pilot, members(4), destinations_=[engagement])
    runner.destination_job_run(job.pk)
    push = DestinationPush.objects.get(destination=engagement)

    outcome = pushing.push_run(push.pk, now=push.next_attempt_at + timedelta(seconds=1))

    assert outcome.state == PushState.FAILED
    letter = DeadLetter.objects.get(kind="destination_push", reference_id=str(push.pk))
    assert "did not answer successfully" in letter.last_error
    job.refresh_from_db()
    assert job.errors[0]["dead_letter_id"] == letter.pk
    assert DestinationPush.objects.get(pk=push.pk).payload["added"]  # the work is still there to replay


def test_inactive_destinations_hold_their_pushes(pilot, engagement, braze, sleeps, persona):
    admin = Actor(user=persona("admin"), environment=pilot, door=Door.API)
    job = start(pilot, members(2), destinations_=[engagement])
    destinations.destination_update(actor=admin, destination=engagement, is_active=False)

    runner.destination_job_run(job.pk)
    assert braze.requests == []
    assert DestinationPush.objects.get(destination=engagement).state == PushState.PENDING

    destinations.destination_update(actor=admin, destination=engagement, is_active=True)
    assert runner.pushes_run_due()["succeeded"] == 1


def test_a_test_that_passes_closes_the_breaker_and_retries_deferred_work_now(pilot, engagement, braze, sleeps, persona):
    breaker = breakers.Breaker.for_destination(engagement)
    for _ in range(5):
        breaker.record_failure("503")
    job = start(pilot, members(2), destinations_=[engagement])
    runner.destination_job_run(job.pk)
    push = DestinationPush.objects.get(destination=engagement)
    assert push.next_attempt_at > timezone.now()

    admin = Actor(user=persona("admin"), environment=pilot, door=Door.API)
    outcome = destinations.destination_test(actor=admin, destination=engagement)

    assert outcome.ok and outcome.requeued == 1
    assert breaker.snapshot().state == "closed"
    assert runner.pushes_run_due()["succeeded"] == 1


def test_breaker_reset_is_audited_and_brings_work_forward(pilot, engagement, sleeps, persona):
    from governance.models import AuditEvent

    breaker = breakers.Breaker.for_destination(engagement)
    for _ in range(5):
        breaker.record_failure("503")
    runner.destination_job_run(start(pilot, members(1), destinations_=[engagement]).pk)
    admin = Actor(user=persona("admin"), environment=pilot, door=Door.ADMIN)

    assert destinations.destination_breaker_reset(actor=admin, destination=engagement) == 1
    assert breaker.snapshot().state == "closed"
    event = AuditEvent.objects.get(action="destination.breaker_reset")
    assert event.changes["before"] == {"breaker": "open", "failures": 5} and event.door == "admin"


def test_the_job_task_runs_after_commit(pilot, drop, django_capture_on_commit_callbacks, monkeypatch):
    from integrations import tasks

    monkeypatch.setattr(
        tasks.destination_job_task,
        "delay",
        lambda job_id: tasks.destination_job_task.apply(args=[job_id]),
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = runner.members_delivery_start(environment=pilot, added=members(3), removed=[])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.kind == runner.JOB_KIND
    assert job_selectors.job_as_public(job)["progress"]["percent"] == 100.0


def test_pushes_never_cross_environments(pilot, sandbox, tmp_path):
    sandbox_drop = DestinationFactory(
        environment=sandbox, adapter="file", config={"directory": str(tmp_path)}, name="sandbox-drop"
    )
    with pytest.raises(ValueError):
        start(pilot, members(1), destinations_=[sandbox_drop])
    job = start(pilot, members(1))
    assert not DestinationPush.objects.filter(job=job, destination=sandbox_drop).exists()
    assert Destination.objects.filter(environment=pilot).count() == 0


def test_a_connection_test_tries_once_and_never_waits(pilot, engagement, braze, sleeps, persona):
    braze.always(503)
    admin = Actor(user=persona("admin"), environment=pilot, door=Door.API)

    outcome = destinations.destination_test(actor=admin, destination=engagement)

    assert outcome.ok is False and "503" in outcome.message
    assert len(braze.requests) == 1 and sleeps == []
    assert breakers.Breaker.for_destination(engagement).snapshot().failures == 1


def test_a_sandbox_row_pointing_at_a_vendor_is_never_called(sandbox, braze, sleeps):
    rogue = DestinationFactory(
        environment=sandbox,
        adapter="engagement",
        config=braze_config(braze),
        credentials=BRAZE_CREDENTIALS,
        name="rogue",
    )

    finished = runner.destination_job_run(start(sandbox, members(1), destinations_=[rogue]).pk)

    assert braze.requests == []
    assert finished.state == JobState.FAILED
    assert "sandbox destination" in finished.errors[0]["message"]


def test_an_unexpected_error_keeps_the_work_for_later(pilot, engagement, sleeps, monkeypatch):
    from integrations.adapters.engagement import EngagementAdapter

    def broken(self, added, removed, checkpoint=None):
        raise KeyError("surprise")

    monkeypatch.setattr(EngagementAdapter, "push_members", broken)
    finished = runner.destination_job_run(start(pilot, members(2), destinations_=[engagement]).pk)

    assert finished.state == JobState.PARTIALLY_SUCCEEDED
    assert "failed unexpectedly (KeyError)" in finished.warnings[0]["message"]
    assert DestinationPush.objects.get(destination=engagement).state == PushState.DEFERRED


def test_the_sweep_runs_a_delivery_job_whose_task_was_lost(pilot, drop):
    job = start(pilot, members(2))
    later = timezone.now() + runner.LOST_JOB_AFTER + timedelta(seconds=1)

    runner.pushes_run_due(now=later)

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED


def test_the_sweep_finishes_a_job_whose_worker_died(pilot, engagement, drop, braze, sleeps):
    job = start(pilot, members(2))
    jobs.job_claim(job.pk)  # a worker claimed it and died before running anything
    later = timezone.now() + pushing.LEASE + timedelta(seconds=1)

    runner.pushes_run_due(now=later)

    job.refresh_from_db()
    assert job.state == JobState.PARTIALLY_SUCCEEDED
    assert {w["destination"]["name"] for w in job.warnings} == {"Braze", "sftp-drop"}
    assert DestinationPush.objects.filter(job=job, state=PushState.SUCCEEDED).count() == 2  # the sweep delivered
    assert all(w["resolved_at"] for w in job.warnings)  # and said so on the job
