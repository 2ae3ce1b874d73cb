"""A SIGKILLed publish is recovered within a minute (issue 12), not after 10 minutes: the
beat sweep runs every 30 s, a worker sweeps as it starts, and on PostgreSQL the job's
advisory lock — released with a killed worker's connection — tells a dead worker from a
live one at once. The job says what happened (`result.restarts`)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from audiences.models import Audience
from audiences.publishing import runner
from audiences.publishing import services as publish
from integrations.models import Job, JobState
from tests.audiences.publish_support import fresh, people
from tests.factories import AudienceFactory


def _running_job(actor, sandbox, *, silent_for: timedelta) -> Job:
    """A publish a worker claimed, then was killed in (its heartbeat stopped `silent_for` ago)."""
    people(sandbox, "eu", 2)
    outcome = publish.audience_publish(actor=actor("operator"), audience=AudienceFactory(environment=sandbox))
    job = outcome.result.job
    Job.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        attempts=1,
        heartbeat_at=timezone.now() - silent_for,
        progress={"done": 0, "total": 3, "phase": "materializing"},
    )
    return job


@pytest.mark.django_db
def test_a_stopped_heartbeat_is_recovered_and_the_job_says_what_happened(actor, sandbox, monkeypatch):
    enqueued: list[int] = []
    monkeypatch.setattr("audiences.tasks.audience_publish_task.delay", enqueued.append)
    job = _running_job(actor, sandbox, silent_for=runner.STALE_AFTER + timedelta(seconds=1))

    assert runner.publish_jobs_recover() == [job.pk] == enqueued
    finished = runner.publish_job_run(job.pk)

    assert finished is not None and finished.state == JobState.SUCCEEDED and finished.attempts == 2
    (restart,) = finished.result["restarts"]
    assert restart["code"] == "worker_restarted" and "stopped while materializing" in restart["message"]
    assert fresh(Audience.objects.get(pk=int(finished.target_id))).live_version is not None


@pytest.mark.django_db
def test_the_portal_job_panel_says_the_job_was_restarted(actor, sandbox, monkeypatch, persona):
    from django.test import Client

    from governance.access.selectors import SESSION_ENVIRONMENT_KEY

    monkeypatch.setattr("audiences.tasks.audience_publish_task.delay", lambda job_id: None)
    job = _running_job(actor, sandbox, silent_for=runner.STALE_AFTER + timedelta(seconds=1))
    runner.publish_job_run(job.pk)
    browser = Client()
    browser.force_login(persona("operator"))
    session = browser.session
    session[SESSION_ENVIRONMENT_KEY] = "sandbox"
    session.save()

    body = browser.get(f"/audiences/jobs/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()

    assert "job-restarts" in body and "another worker took the job over" in body


@pytest.mark.django_db
def test_a_live_heartbeat_is_left_alone(actor, sandbox, monkeypatch):
    monkeypatch.setattr("audiences.tasks.audience_publish_task.delay", lambda job_id: None)
    job = _running_job(actor, sandbox, silent_for=timedelta(seconds=1))

    assert runner.publish_jobs_recover() == []
    assert runner.publish_job_run(job.pk) is None
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING


def test_staleness_is_a_setting_of_a_minute_at_most_by_default():
    assert runner.STALE_AFTER == timedelta(seconds=settings.PUBLISH_STALE_SECONDS) <= timedelta(minutes=1)


def test_beat_sweeps_every_30_seconds():
    entry = settings.CELERY_BEAT_SCHEDULE["audiences.publish_recover sweep"]
    assert entry["task"] == "audiences.publish_recover" and entry["schedule"] <= 30


def test_a_starting_worker_sweeps(monkeypatch):
    from celery.signals import worker_ready

    calls: list[bool] = []
    monkeypatch.setattr(runner, "publish_jobs_recover", lambda **kwargs: calls.append(True) or [7])

    runner.recover_on_worker_start(sender=None)

    assert calls == [True]
    assert any(key[0] == "audiences.publish_recover_on_start" for key, _ in worker_ready.receivers)


def test_a_failing_sweep_at_worker_start_does_not_stop_the_worker(monkeypatch):
    def down(**kwargs):
        raise RuntimeError("database is starting")

    monkeypatch.setattr(runner, "publish_jobs_recover", down)
    runner.recover_on_worker_start(sender=None)  # logged, not raised


# --- PostgreSQL: the job's lock decides, whatever the heartbeat's age -----------------------


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        from tests.conftest import require_service

        require_service("PostgreSQL", "advisory locks are PostgreSQL's; set DATABASE_URL")


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_on_postgresql_a_killed_workers_job_is_recovered_within_seconds(postgres, actor, sandbox, monkeypatch):
    monkeypatch.setattr("audiences.tasks.audience_publish_task.delay", lambda job_id: None)
    job = _running_job(actor, sandbox, silent_for=timedelta(seconds=10))  # long before any 10-minute staleness

    # a live worker holds the job's lock (on its own connection): left alone
    held, release, done = threading.Event(), threading.Event(), threading.Event()

    def worker() -> None:
        try:
            assert runner._try_lock(job.pk)
            held.set()
            release.wait(10)
            runner._unlock(job.pk)
        finally:
            connections.close_all()
            done.set()

    threading.Thread(target=worker, daemon=True).start()
    assert held.wait(10)
    assert runner.publish_jobs_recover() == []
    # the worker is killed: its connection, and so its lock, is gone
    release.set()
    assert done.wait(10)

    assert runner.publish_jobs_recover() == [job.pk]
    finished = runner.publish_job_run(job.pk)
    assert finished is not None and finished.state == JobState.SUCCEEDED
    assert finished.result["restarts"][0]["code"] == "worker_restarted"
