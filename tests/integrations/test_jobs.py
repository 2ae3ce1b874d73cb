"""Job services (create, claim with a conditional UPDATE, progress, finish with warnings)
and `GET /jobs/{id}`."""

from __future__ import annotations

import pytest

from integrations.jobs import selectors as job_selectors
from integrations.jobs import services as jobs
from integrations.models import Job, JobState
from tests.refusals import refused


def test_a_job_is_claimed_once(sandbox):
    job = jobs.job_create(environment=sandbox, kind="export")

    first, second = jobs.job_claim(job.pk), jobs.job_claim(job.pk)

    assert first is not None and first.state == JobState.RUNNING and first.attempts == 1
    assert first.started_at is not None
    assert second is None


def test_a_cancelled_job_is_never_claimed(sandbox):
    job = jobs.job_create(environment=sandbox, kind="export")
    assert jobs.job_cancel(job) is True
    assert jobs.job_claim(job.pk) is None
    jobs_running = jobs.job_create(environment=sandbox, kind="export")
    jobs.job_claim(jobs_running.pk)
    assert jobs.job_cancel(jobs_running) is False


def test_progress_and_finish_with_warnings(sandbox):
    job = jobs.job_claim(jobs.job_create(environment=sandbox, kind="export", total=10).pk)
    jobs.job_progress(job, done=4)
    assert Job.objects.get(pk=job.pk).progress == {"done": 4, "total": 10}

    warning = jobs.note("rows_skipped", "2 rows had no email.", "Add emails and export again.")
    finished = jobs.job_finish(job, warnings=[warning], result={"rows": 8})

    assert finished.state == JobState.PARTIALLY_SUCCEEDED
    assert finished.warnings == [warning] and finished.result == {"rows": 8}
    assert finished.finished_at is not None


def test_finish_without_warnings_succeeds_and_completes_progress(sandbox):
    job = jobs.job_claim(jobs.job_create(environment=sandbox, kind="export", total=3).pk)
    finished = jobs.job_finish(job)
    assert finished.state == JobState.SUCCEEDED and finished.progress == {"done": 3, "total": 3}


def test_fail_and_a_finished_job_stays_finished(sandbox):
    job = jobs.job_claim(jobs.job_create(environment=sandbox, kind="export").pk)
    failed = jobs.job_fail(job, error=jobs.note("boom", "It broke.", "Try again."))
    assert failed.state == JobState.FAILED
    again = jobs.job_finish(failed)
    assert again.state == JobState.FAILED


def test_queue_position_counts_queued_jobs_of_the_same_kind(sandbox, pilot):
    a1 = jobs.job_create(environment=sandbox, kind="export")
    jobs.job_create(environment=pilot, kind="audience.publish")
    a2 = jobs.job_create(environment=pilot, kind="export")
    a3 = jobs.job_create(environment=sandbox, kind="export")

    assert [job_selectors.queue_position(j) for j in (a1, a2, a3)] == [1, 2, 3]
    jobs.job_claim(a1.pk)
    a1.refresh_from_db()
    assert job_selectors.queue_position(a1) is None
    assert job_selectors.queue_position(a3) == 2


def test_get_job_shows_state_progress_queue_position_warnings(api, sandbox):
    client = api("analyst")
    ahead = jobs.job_create(environment=sandbox, kind="export")
    job = jobs.job_create(environment=sandbox, kind="export", target=("audiences.audience", 42), total=5)

    body = client.get(f"/api/v1/jobs/{job.pk}").json()

    assert body["state"] == "queued" and body["queue_position"] == 2
    assert body["target"] == {"type": "audiences.audience", "id": "42"}
    assert body["progress"] == {"done": 0, "total": 5, "percent": 0.0}
    assert body["environment"] == "sandbox"

    jobs.job_claim(ahead.pk)
    running = jobs.job_claim(job.pk)
    jobs.job_progress(running, done=2)
    jobs.job_finish(running, warnings=[jobs.note("w", "Careful.", "Do this.")])
    body = client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["state"] == "partially_succeeded" and body["queue_position"] is None
    assert body["warnings"][0] == {"code": "w", "message": "Careful.", "hint": "Do this."}
    assert body["progress"]["percent"] == 40.0


@pytest.mark.parametrize("who", ["analyst", "operator", "approver", "compliance", "developer", "admin"])
def test_every_role_may_follow_a_job(api, sandbox, who):
    job = jobs.job_create(environment=sandbox, kind="export")
    assert api(who).get(f"/api/v1/jobs/{job.pk}").status_code == 200


def test_a_job_of_another_environment_is_404(api, pilot):
    job = jobs.job_create(environment=pilot, kind="export")
    response = api("admin").get(f"/api/v1/jobs/{job.pk}")
    assert response.status_code == 404 and response.json()["code"] == "job_not_found"
    refused(api("admin").get("/api/v1/jobs/999999"), 404, "job_not_found")


def test_a_user_without_a_role_may_not(api, sandbox):
    job = jobs.job_create(environment=sandbox, kind="export")
    refused(api("nobody").get(f"/api/v1/jobs/{job.pk}"), 403, "permission_denied")
