"""DELETE of a draft while its first publish is building (issue 12): refused with 409
`audience_building` under the audience's row lock, never an IntegrityError that leaves the
audience published; a first publish still queued is cancelled with the draft. And a failed
job never shows a raw database error to the marketer."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from audiences.models import Audience, AudienceVersion, VersionState
from audiences.publishing import runner
from audiences.publishing import services as publish
from governance.models import AuditEvent
from integrations.models import Job, JobState
from tests.audiences.publish_support import fresh, people, run
from tests.factories import AudienceFactory

pytestmark = pytest.mark.django_db


def _first_publish(actor, sandbox):
    people(sandbox, "p", 2)
    operator = actor("operator")
    draft = AudienceFactory(environment=sandbox)
    outcome = publish.audience_publish(actor=operator, audience=draft)
    return draft, outcome.result.job


def test_deleting_a_draft_whose_first_publish_is_running_is_409_audience_building(api, actor, sandbox):
    draft, job = _first_publish(actor, sandbox)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)  # a worker claimed it

    response = api("operator").delete(f"/api/v1/audiences/{draft.pk}")

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "audience_building" and body["job_id"] == job.pk
    assert f"/api/v1/jobs/{job.pk}" in body["hint"]
    assert Audience.objects.filter(pk=draft.pk).exists()
    assert not AuditEvent.objects.filter(action="audience.delete").exists()


def test_the_build_then_finishes_and_a_second_delete_archives(api, actor, sandbox):
    draft, job = _first_publish(actor, sandbox)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    assert api("operator").delete(f"/api/v1/audiences/{draft.pk}").status_code == 409
    Job.objects.filter(pk=job.pk).update(state=JobState.QUEUED)

    finished = run(job)
    assert finished.state == JobState.SUCCEEDED and fresh(draft).live_version.number == 1

    response = api("operator").delete(f"/api/v1/audiences/{draft.pk}")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "archived"


def test_deleting_a_draft_whose_first_publish_is_still_queued_cancels_it(api, actor, sandbox):
    draft, job = _first_publish(actor, sandbox)

    response = api("operator").delete(f"/api/v1/audiences/{draft.pk}")

    assert response.status_code == 204, response.content
    assert not Audience.objects.filter(pk=draft.pk).exists()
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert job.errors[0]["code"] == "audience_deleted"
    # the task, if it still comes, finds nothing to do
    assert runner.publish_job_run(job.pk) is None


def test_a_worker_that_claims_the_job_first_wins_over_the_delete(api, actor, sandbox, monkeypatch):
    draft, job = _first_publish(actor, sandbox)
    from integrations.jobs import services as jobs

    real_cancel = jobs.job_cancel

    def claimed_meanwhile(target, **kwargs):
        Job.objects.filter(pk=target.pk).update(state=JobState.RUNNING)
        return real_cancel(target, **kwargs)

    monkeypatch.setattr(jobs, "job_cancel", claimed_meanwhile)

    response = api("operator").delete(f"/api/v1/audiences/{draft.pk}")

    assert response.status_code == 409 and response.json()["code"] == "audience_building"
    assert AudienceVersion.objects.get(job=job).state == VersionState.BUILDING


def test_a_failed_job_words_a_database_outage_and_keeps_the_raw_text_for_operators(api, actor, sandbox, monkeypatch):
    draft, job = _first_publish(actor, sandbox)

    def outage(*args, **kwargs):
        raise OperationalError('connection to server at "10.0.0.5", port 5432 failed: Connection refused')

    monkeypatch.setattr(runner, "materialize", outage)
    failed = run(job)

    assert failed.state == JobState.FAILED
    (error,) = failed.errors
    assert "database was unavailable" in error["message"] and "retry" in error["message"]
    assert "10.0.0.5" in error["operator_detail"] and "OperationalError" in error["operator_detail"]
    version = AudienceVersion.objects.get(job=job)
    assert "OperationalError" not in version.error and "10.0.0.5" not in version.error

    shown = api("operator").get(f"/api/v1/jobs/{job.pk}").json()
    assert "operator_detail" not in shown["errors"][0]
    assert "10.0.0.5" not in str(shown) and "OperationalError" not in str(shown)
    versions = api("operator").get(f"/api/v1/audiences/{draft.pk}/versions").content.decode()
    assert "10.0.0.5" not in versions
