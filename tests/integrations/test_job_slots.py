"""Job slots: heavy work beyond an environment's limit waits as `queued`, with its queue
position, and starts by itself when a slot frees; a killed worker holds no slot."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.jobs import selectors as job_selectors
from integrations.jobs import services as jobs
from integrations.jobs import slots
from integrations.models import Job, JobState
from marketerapi.celery import app

HEAVY = "test.heavy"
STARTED: list[int] = []


@app.task(name="tests.job_slot_probe")
def job_slot_probe(job_id: int) -> None:
    """What a heavy kind's task does first: claim, or return while the slots are full."""
    if jobs.job_claim(job_id) is not None:
        STARTED.append(job_id)


@pytest.fixture(autouse=True)
def heavy_kind(monkeypatch, settings):
    monkeypatch.setitem(slots.HEAVY, HEAVY, "tests.job_slot_probe")
    # Run the kick here, as a worker would, whether or not a broker is configured.
    monkeypatch.setattr(app.tasks["tests.job_slot_probe"], "delay", job_slot_probe.run)
    settings.JOB_SLOTS = {"sandbox": 2, "*": 3}
    STARTED.clear()


def queued(environment, n):
    return [jobs.job_create(environment=environment, kind=HEAVY) for _ in range(n)]


def test_past_the_limit_a_job_waits_with_its_queue_position(sandbox):
    a, b, c, d = queued(sandbox, 4)

    assert jobs.job_claim(a.pk) is not None
    assert jobs.job_claim(b.pk) is not None
    assert jobs.job_claim(c.pk) is None  # two slots in the sandbox, both taken

    c.refresh_from_db()
    d.refresh_from_db()
    assert c.state == d.state == JobState.QUEUED
    assert [job_selectors.queue_position(j) for j in (c, d)] == [1, 2]


def test_a_finished_job_starts_the_next_by_itself(sandbox, django_capture_on_commit_callbacks):
    a, b, c, d = queued(sandbox, 4)
    running = jobs.job_claim(a.pk)
    jobs.job_claim(b.pk)
    assert jobs.job_claim(c.pk) is None

    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_finish(running)

    c.refresh_from_db()
    d.refresh_from_db()
    assert STARTED == [c.pk] and c.state == JobState.RUNNING
    assert d.state == JobState.QUEUED and job_selectors.queue_position(d) == 1


def test_failing_or_cancelling_frees_the_slot_too(sandbox, django_capture_on_commit_callbacks):
    a, b, c, d, e = queued(sandbox, 5)
    first, second = jobs.job_claim(a.pk), jobs.job_claim(b.pk)

    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_fail(first, error=jobs.note("boom", "It broke.", "Retry."))
    assert STARTED == [c.pk]

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.job_cancel(d) is True  # a waiting job given up: the next in line moves up
    assert job_selectors.queue_position(e) == 1
    assert second is not None


def test_a_newer_job_never_jumps_the_line(sandbox):
    a, b, c = queued(sandbox, 3)
    jobs.job_claim(a.pk)

    # One slot is free, but the older job b is waiting for it.
    assert jobs.job_claim(c.pk) is None
    assert jobs.job_claim(b.pk) is not None


def test_a_killed_worker_holds_no_slot(sandbox):
    a, b, c = queued(sandbox, 3)
    jobs.job_claim(a.pk)
    jobs.job_claim(b.pk)
    assert jobs.job_claim(c.pk) is None

    # b's worker was SIGKILLed: its heartbeat stopped more than JOB_SLOT_STALE_SECONDS ago.
    Job.objects.filter(pk=b.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=121))

    assert jobs.job_claim(c.pk) is not None


def test_environments_have_their_own_slots(sandbox, pilot):
    sandbox_jobs = queued(sandbox, 3)
    pilot_jobs = queued(pilot, 4)

    assert [jobs.job_claim(j.pk) is not None for j in sandbox_jobs] == [True, True, False]
    assert [jobs.job_claim(j.pk) is not None for j in pilot_jobs] == [True, True, True, False]


def test_the_sweep_starts_what_fits_when_a_kick_was_lost(sandbox, pilot):
    a, b, c = queued(sandbox, 3)
    (p,) = queued(pilot, 1)

    started = slots.dispatch_queued()

    assert sorted(started) == sorted([a.pk, b.pk, p.pk])
    assert sorted(STARTED) == sorted([a.pk, b.pk, p.pk])
    c.refresh_from_db()
    assert c.state == JobState.QUEUED


def test_light_jobs_do_not_wait_for_slots(sandbox):
    queued_heavy = queued(sandbox, 2)
    for job in queued_heavy:
        jobs.job_claim(job.pk)
    light = jobs.job_create(environment=sandbox, kind="destination.push")
    assert jobs.job_claim(light.pk) is not None


def test_get_job_shows_the_slot_queue_position(api, sandbox):
    a, b, _c, d = queued(sandbox, 4)
    jobs.job_claim(a.pk)
    jobs.job_claim(b.pk)

    body = api("analyst").get(f"/api/v1/jobs/{d.pk}").json()

    assert body["state"] == "queued" and body["queue_position"] == 2


def test_publishes_are_heavy_work():
    from audiences.publishing.runner import PUBLISH, ROLLBACK

    assert slots.is_heavy(PUBLISH) and slots.is_heavy(ROLLBACK)
