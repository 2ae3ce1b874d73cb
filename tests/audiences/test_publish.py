"""Publishing: POST /audiences/{id}/publish → a job materializes an immutable version set-based,
diffs it against the live one, swaps it live atomically, audits, emits and pushes the diff.

Who may publish: the owning team, a share of change, or admin (analyst 403, another team 403
naming the owner, another environment 404). Pilot above the reach threshold asks for approval.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from audiences.models import Audience, AudienceState, AudienceVersion, Membership, VersionState
from audiences.publishing import errors, runner, swap
from audiences.publishing import services as publish
from governance.models import ApprovalPolicy, ApprovalRequest, ApprovalState, AuditEvent, OutboxEvent
from integrations.models import DestinationPush, Job, JobState
from tests.audiences.publish_support import (
    fresh,
    members_of,
    people,
    publish_now,
    reachable_now,
    run,
    set_consent,
)
from tests.factories import AudienceFactory, DestinationFactory
from tests.refusals import denied_event, refused

# What publishing does is tested here (tasks in-process); the broker is tested elsewhere.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


@pytest.fixture
def drop(sandbox, tmp_path, settings):
    settings.DESTINATION_SANDBOX_FILE_ROOTS = [str(tmp_path)]
    return DestinationFactory(environment=sandbox, name="drop", config={"directory": str(tmp_path), "format": "jsonl"})


def _dropped_rows(directory: Path) -> list[dict]:
    rows = []
    for path in sorted(directory.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


# --- end to end in a sandbox ---------------------------------------------------------------------


def test_publish_in_sandbox_end_to_end(api, sandbox, drop, tmp_path, django_capture_on_commit_callbacks):
    # given: EU people with and without email consent, one suppressed later by the rules' gate
    reachable = people(sandbox, "eu", 4)
    people(sandbox, "eu-denied", 2, consent="denied")
    people(sandbox, "eu-none", 1, consent=None)
    people(sandbox, "uk", 2, region="UK")
    target = AudienceFactory(environment=sandbox)
    client = api("operator")

    # when: published through the API, the Celery task running eagerly after commit
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/audiences/{target.pk}/publish", {}, format="json")

    # then: 202 with the job, which built version 1 of exactly the reachable set and made it live
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body["job"]) == {"id", "state", "url"}
    assert body["version"]["number"] == 1
    assert response["Location"] == f"/api/v1/jobs/{body['job']['id']}"
    job = Job.objects.get(pk=body["job"]["id"])
    assert job.state == JobState.SUCCEEDED, (job.errors, job.warnings)
    assert job.progress["done"] == job.progress["total"] == runner.STEPS_TOTAL

    target = fresh(target)
    version = target.live_version
    assert version is not None and version.number == 1 and version.state == VersionState.READY
    assert target.state == AudienceState.PUBLISHED
    assert members_of(version) == {p.external_id for p in reachable} == reachable_now(target)
    assert (version.matching, version.members, version.added, version.removed) == (7, 4, 4, 0)
    assert [step["step"] for step in version.waterfall] == [
        "matching",
        "no address",
        "without consent",
        "suppressed",
        "regional restriction",
        "reachable",
    ]
    assert version.waterfall[1] == {"step": "no address", "remaining": 7, "removed": 0}
    assert version.waterfall[2] == {"step": "without consent", "remaining": 4, "removed": 3}
    assert version.rules == target.rules and version.channel == "email" and version.built_at is not None
    assert version.created_by == client.user

    # audited: the request, then the swap
    actions = list(AuditEvent.objects.filter(target_id=str(target.pk)).order_by("id").values_list("action", flat=True))
    assert actions == ["audience.publish", "audience.published"]
    published = AuditEvent.objects.get(action="audience.published")
    assert published.changes["after"]["live_version"] == {"id": version.pk, "number": 1}
    assert published.changes["counts"] == {"matching": 7, "members": 4, "added": 4, "removed": 0}

    # emitted with the counts
    event = OutboxEvent.objects.get(type="audience.published")
    assert event.data["version"] == {"id": version.pk, "number": 1}
    assert event.data["counts"]["members"] == 4 and event.data["previous_version"] is None

    # pushed to the file destination: the four external ids, added
    push = DestinationPush.objects.get(destination=drop)
    assert push.job_id == job.pk
    assert sorted(push.payload["added"]) == sorted(p.external_id for p in reachable)
    assert push.payload["removed"] == []
    rows = _dropped_rows(tmp_path)
    assert sorted(r["external_id"] for r in rows if r["operation"] == "add") == sorted(p.external_id for p in reachable)

    # and GET /jobs/{id} tells the same story
    shown = client.get(f"/api/v1/jobs/{job.pk}").json()
    assert shown["state"] == "succeeded" and shown["result"]["version"]["number"] == 1


def test_a_second_publish_diffs_against_the_live_version_and_pushes_both_sides(actor, sandbox, drop):
    stay = people(sandbox, "stay", 3)
    leave = people(sandbox, "leave", 2)
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    _, first = publish_now(operator, target)
    assert first.state == JobState.SUCCEEDED

    # when: two people withdraw consent and three join
    set_consent(leave, "denied")
    join = people(sandbox, "join", 3)
    _, second = publish_now(operator, fresh(target))

    # then: version 2 is live with the right diff, and the pushes carry it
    target = fresh(target)
    v2 = target.live_version
    assert v2.number == 2
    assert members_of(v2) == {p.external_id for p in stay + join}
    assert (v2.added, v2.removed, v2.members) == (3, 2, 6)
    pushes = list(DestinationPush.objects.filter(job=second).order_by("id"))
    assert [sorted(p.payload["removed"]) for p in pushes if p.payload["removed"]] == [
        sorted(p.external_id for p in leave)
    ]
    assert [sorted(p.payload["added"]) for p in pushes if p.payload["added"]] == [sorted(p.external_id for p in join)]
    # version 1 is immutable: its members are what they were
    assert members_of(AudienceVersion.objects.get(audience=target, number=1)) == {p.external_id for p in stay + leave}
    event = OutboxEvent.objects.filter(type="audience.published").latest("id")
    assert event.data["previous_version"]["number"] == 1
    assert event.data["counts"] == {"matching": 8, "members": 6, "added": 3, "removed": 2}


def test_pushes_are_split_in_batches(actor, sandbox, drop, monkeypatch):
    monkeypatch.setattr(swap, "PUSH_BATCH", 2)
    people(sandbox, "eu", 5)
    _, job = publish_now(actor("operator"), AudienceFactory(environment=sandbox))
    pushes = list(DestinationPush.objects.filter(job=job).order_by("id"))
    assert [len(p.payload["added"]) for p in pushes] == [2, 2, 1]
    assert job.state == JobState.SUCCEEDED


def test_a_destination_that_is_down_makes_the_job_partially_succeed(actor, sandbox, drop, monkeypatch):
    from integrations.adapters.base import ServerFailure
    from integrations.adapters.file import FileAdapter

    def down(self, added, removed, checkpoint=None):
        raise ServerFailure("The drop directory's disk is not mounted.", hint="")

    monkeypatch.setattr(FileAdapter, "push_members", down)
    people(sandbox, "eu", 2)
    target = AudienceFactory(environment=sandbox)
    _, job = publish_now(actor("operator"), target)

    # the version is live all the same; the job says the delivery is deferred and retried
    assert fresh(target).live_version.number == 1
    assert job.state == JobState.PARTIALLY_SUCCEEDED
    assert [w["code"] for w in job.warnings] == ["destination_deferred"]
    assert DestinationPush.objects.get(job=job).state == "deferred"


# --- consent is evaluated when the job runs ------------------------------------------------------


def test_consent_revoked_between_request_and_build_is_honoured(actor, sandbox):
    # given: a publish accepted while everyone had consent
    everyone = people(sandbox, "eu", 4)
    target = AudienceFactory(environment=sandbox)
    outcome = publish.audience_publish(actor=actor("operator"), audience=target)

    # when: two withdraw consent before the worker gets to the job
    set_consent(everyone[:2], "denied")
    set_consent(everyone[2:3], "unknown")
    run(outcome.result.job)

    # then: only the one who still consents is a member
    assert members_of(fresh(target).live_version) == {everyone[3].external_id}


def test_no_published_version_ever_holds_someone_without_granted_consent(actor, sandbox):
    people(sandbox, "granted", 3)
    people(sandbox, "denied", 2, consent="denied")
    people(sandbox, "sms-only", 2, consent="granted", channel="sms")
    rules = {"any": [{"attr": "region", "op": "eq", "value": "EU"}, {"consent": "email", "is": False}]}
    target = AudienceFactory(environment=sandbox, rules=rules)
    publish_now(actor("operator"), target)
    for version in AudienceVersion.objects.filter(state=VersionState.READY):
        without = Membership.objects.filter(version=version).exclude(
            profile__consents__channel=version.channel, profile__consents__status="granted"
        )
        assert not without.exists()
    assert len(members_of(fresh(target).live_version)) == 3


# --- approval in pilot ----------------------------------------------------------------------------


def test_publish_in_pilot_above_the_threshold_asks_for_approval_then_runs(
    api, pilot, django_capture_on_commit_callbacks
):
    ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").update(threshold=2)
    in_pilot = people(pilot, "pilot", 3)
    target = AudienceFactory(environment=pilot, name="Spring EU buyers")
    operator = api("operator", pilot)

    response = operator.post(f"/api/v1/audiences/{target.pk}/publish", format="json")

    assert response.status_code == 202, response.content
    approval = response.json()["approval"]
    assert {approval[k] for k in ("state", "required", "received")} == {"pending", 1, 0}
    assert approval["summary"].startswith("Publish 'Spring EU buyers': adds 3 people, removes 0")
    assert not AudienceVersion.objects.filter(audience=target).exists()
    assert AuditEvent.objects.filter(action="audience.publish", outcome="approval_requested").count() == 1
    # a second request while this one is open is refused
    again = operator.post(f"/api/v1/audiences/{target.pk}/publish", format="json")
    assert again.status_code == 409 and again.json()["code"] == "approval_pending"

    # when: an approver approves, and the approved request runs (eager Celery after commit)
    approver = api("approver", pilot)
    with django_capture_on_commit_callbacks(execute=True):
        voted = approver.post(f"/api/v1/approvals/{approval['id']}/approve", {"comment": "ok"}, format="json")
    assert voted.status_code == 200, voted.content

    # then: executed as the requester; the version is live with the three people
    request = ApprovalRequest.objects.get(pk=approval["id"])
    assert request.state == ApprovalState.EXECUTED, request.result
    target = fresh(target)
    assert target.live_version is not None and target.live_version.created_by == operator.user
    assert members_of(target.live_version) == {p.external_id for p in in_pilot}
    published = AuditEvent.objects.get(action="audience.published")
    assert published.actor_label == operator.user.username
    assert published.approval_refs[0]["voter"] == approver.user.username
    job = Job.objects.get(pk=request.result["job"])
    assert job.state == JobState.SUCCEEDED


def test_an_edit_after_the_request_makes_it_stale(api, pilot):
    ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").update(threshold=0)
    people(pilot, "pilot", 1)
    target = AudienceFactory(environment=pilot)
    response = api("operator", pilot).post(f"/api/v1/audiences/{target.pk}/publish", format="json")
    request = ApprovalRequest.objects.get(pk=response.json()["approval"]["id"])
    before = request.target_fingerprint

    Audience.objects.filter(pk=target.pk).update(updated_at=timezone.now() + timedelta(seconds=1))

    assert publish.publish_fingerprint(fresh(target)) != before


def test_below_the_threshold_pilot_publishes_at_once(actor, pilot):
    people(pilot, "pilot", 2)
    outcome = publish.audience_publish(actor=actor("operator", pilot), audience=AudienceFactory(environment=pilot))
    assert outcome.approval is None and outcome.result is not None


# --- a failed or killed worker leaves the previous version live ------------------------------------


def _published_v1(actor, sandbox):
    first = people(sandbox, "first", 2)
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    publish_now(operator, target)
    people(sandbox, "later", 3)
    return operator, fresh(target), first


def test_a_crash_after_materializing_leaves_the_previous_version_live(actor, sandbox, monkeypatch):
    operator, target, first = _published_v1(actor, sandbox)

    def crash(*args, **kwargs):
        raise RuntimeError("worker lost its database connection")

    monkeypatch.setattr(runner, "swap_live", crash)
    _, job = publish_now(operator, target)

    # then: version 1 is live with its members; version 2 failed and says why; so does the job
    target = fresh(target)
    assert target.live_version.number == 1 and members_of(target.live_version) == {p.external_id for p in first}
    v2 = AudienceVersion.objects.get(audience=target, number=2)
    assert v2.state == VersionState.FAILED and "an unexpected error occurred" in v2.error
    assert not Membership.objects.filter(version=v2).exists()
    assert job.state == JobState.FAILED
    (error,) = job.errors
    assert error["code"] == "publish_failed"
    assert "version 1 stays live" in error["message"] and error["hint"]
    # the raw exception is for operators (the admin site, the log), never in what a marketer reads
    assert "worker lost its database connection" not in v2.error + error["message"]
    assert error["operator_detail"] == "RuntimeError: worker lost its database connection"

    # re-running works
    monkeypatch.undo()
    _, again = publish_now(operator, target)
    assert again.state == JobState.SUCCEEDED and fresh(target).live_version.number == 3
    assert len(members_of(fresh(target).live_version)) == 5


class WorkerKilled(BaseException):
    """Stands for SIGKILL: no except clause of the task sees it."""


def test_a_killed_worker_leaves_the_job_running_and_a_rerun_finishes_it(actor, sandbox, monkeypatch):
    operator, target, _ = _published_v1(actor, sandbox)
    outcome = publish.audience_publish(actor=operator, audience=target)

    def killed(*args, **kwargs):
        raise WorkerKilled()

    monkeypatch.setattr(runner, "swap_live", killed)
    with pytest.raises(WorkerKilled):
        runner.publish_job_run(outcome.result.job.pk)

    # the previous version is still live; the job is left running, its version building
    target = fresh(target)
    assert target.live_version.number == 1
    job = Job.objects.get(pk=outcome.result.job.pk)
    assert job.state == JobState.RUNNING
    assert AudienceVersion.objects.get(pk=outcome.result.version.pk).state == VersionState.BUILDING
    # a redelivered message is not run twice while the worker might be alive…
    monkeypatch.undo()
    assert runner.publish_job_run(job.pk) is None
    # …and a new publish meanwhile is refused with the job to follow
    with pytest.raises(errors.PublishInProgress) as refused:
        publish.audience_publish(actor=operator, audience=target)
    assert refused.value.extra["job_id"] == job.pk

    # when: the heartbeat goes stale, the recovery sweep enqueues it and a worker takes it over
    later = timezone.now() + runner.STALE_AFTER + timedelta(seconds=1)
    assert runner.publish_jobs_recover(now=later) == [job.pk]
    finished = runner.publish_job_run(job.pk, now=later)

    # then: it finishes from the start of the step it was in
    assert finished.state == JobState.SUCCEEDED and finished.attempts == 2
    target = fresh(target)
    assert target.live_version_id == outcome.result.version.pk
    assert members_of(target.live_version) == reachable_now(target)


def test_a_stale_build_is_superseded_by_a_new_publish(actor, sandbox, monkeypatch):
    operator, target, _ = _published_v1(actor, sandbox)
    outcome = publish.audience_publish(actor=operator, audience=target)
    monkeypatch.setattr(runner, "swap_live", lambda *a, **k: (_ for _ in ()).throw(WorkerKilled()))
    with pytest.raises(WorkerKilled):
        runner.publish_job_run(outcome.result.job.pk)
    monkeypatch.undo()
    Job.objects.filter(pk=outcome.result.job.pk).update(heartbeat_at=timezone.now() - runner.STALE_AFTER * 2)

    _, job = publish_now(operator, target)

    assert job.state == JobState.SUCCEEDED and fresh(target).live_version.number == 3
    old = Job.objects.get(pk=outcome.result.job.pk)
    # one terminal state for a superseded job, started or not (issue 12): cancelled, saying by which job
    assert old.state == JobState.CANCELLED and old.errors[-1]["code"] == "superseded"
    assert old.result["superseded_by"] == job.pk and f"superseded by job {job.pk}" in old.errors[-1]["message"]
    assert AudienceVersion.objects.get(pk=outcome.result.version.pk).state == VersionState.FAILED
    # and the old worker, were it to come back, cannot swap its version live
    assert runner.publish_job_run(old.pk) is None


def test_a_queued_publish_is_replaced_by_a_newer_one(actor, sandbox):
    people(sandbox, "eu", 1)
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    first = publish.audience_publish(actor=operator, audience=target)
    second = publish.audience_publish(actor=operator, audience=fresh(target))
    assert Job.objects.get(pk=first.result.job.pk).state == JobState.CANCELLED
    run(second.result.job)
    assert fresh(target).live_version_id == second.result.version.pk


def test_an_archived_audience_is_not_published(actor, sandbox):
    people(sandbox, "eu", 1)
    target = AudienceFactory(environment=sandbox, state=AudienceState.ARCHIVED)
    with pytest.raises(Exception) as refused:
        publish.audience_publish(actor=actor("operator"), audience=target)
    assert getattr(refused.value, "code", "") == "audience_archived"


def test_archived_while_building_neither_goes_live_nor_pushes(actor, sandbox, drop):
    people(sandbox, "eu", 2)
    target = AudienceFactory(environment=sandbox)
    outcome = publish.audience_publish(actor=actor("operator"), audience=target)
    Audience.objects.filter(pk=target.pk).update(state=AudienceState.ARCHIVED)

    job = run(outcome.result.job)

    assert job.state == JobState.FAILED and job.errors[0]["code"] == "audience_archived"
    assert fresh(target).live_version is None
    assert not DestinationPush.objects.exists()


# --- permissions, environments, idempotency, quota -------------------------------------------------


def test_who_may_publish(api, sandbox, pilot):
    people(sandbox, "eu", 1)
    target = AudienceFactory(environment=sandbox)
    url = f"/api/v1/audiences/{target.pk}/publish"

    analyst = api("analyst").post(url, format="json")
    assert analyst.status_code == 403 and analyst.json()["code"] == "permission_denied"

    other_team = api("operator2").post(url, format="json")
    refused(other_team, 403, "permission_denied")
    assert "growth" in other_team.json()["detail"]
    for who in ("p-analyst", "p-operator2"):
        denied_event(User.objects.get(username=who), "audience.publish")

    elsewhere = api("operator", pilot).post(url, format="json")
    assert elsewhere.status_code == 404 and elsewhere.json()["code"] == "audience_not_found"

    assert not AudienceVersion.objects.exists()
    denied = AuditEvent.objects.filter(action="audience.publish", outcome="denied")
    assert denied.count() == 2

    assert api("admin").post(url, format="json").status_code == 202


def test_a_token_without_the_publish_scope_is_refused(db, persona, sandbox):
    from rest_framework.test import APIClient

    from tests.conftest import issue_test_token

    people(sandbox, "eu", 1)
    target = AudienceFactory(environment=sandbox)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_test_token(persona('operator'), sandbox, ['read', 'write'])}")
    response = client.post(f"/api/v1/audiences/{target.pk}/publish", format="json")
    assert "publish" in refused(response, 403, "permission_denied")["detail"]
    denied_event(persona("operator"), "audience.publish")


def test_idempotency_key_replays_the_first_answer(api, sandbox):
    people(sandbox, "eu", 1)
    target = AudienceFactory(environment=sandbox)
    client = api("operator")
    url = f"/api/v1/audiences/{target.pk}/publish"
    first = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="publish-1")
    second = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="publish-1")
    assert first.status_code == second.status_code == 202
    assert second["Idempotent-Replayed"] == "true" and second.json()["job"] == first.json()["job"]
    assert AudienceVersion.objects.filter(audience=target).count() == 1


def test_unknown_fields_are_refused(api, sandbox):
    target = AudienceFactory(environment=sandbox)
    response = api("operator").post(f"/api/v1/audiences/{target.pk}/publish", {"force": True}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "unknown_fields"


def test_each_accepted_publish_counts_against_the_daily_quota(api, sandbox):
    from governance.models import QuotaPolicy

    QuotaPolicy.objects.filter(name="publish").update(limit=1)
    people(sandbox, "eu", 1)
    first_audience = AudienceFactory(environment=sandbox)
    second_audience = AudienceFactory(environment=sandbox, name="Second")
    client = api("operator")
    first = client.post(f"/api/v1/audiences/{first_audience.pk}/publish", format="json")
    assert first.status_code == 202 and first.json()["quota_warning"]["name"] == "publish"
    second = client.post(f"/api/v1/audiences/{second_audience.pk}/publish", format="json")
    assert second.status_code == 429 and second.json()["code"] == "quota_exceeded"
    assert not AudienceVersion.objects.filter(audience=second_audience).exists()


def test_production_publishes_wait_for_a_change_window(actor, production):
    production.change_windows = [{"days": [0], "start": "00:00", "end": "00:01"}]
    production.save(update_fields=["change_windows"])
    people(production, "prod", 1)
    target = AudienceFactory(environment=production)
    now = timezone.now()
    if production.change_windows and now.weekday() == 0 and now.hour == 0 and now.minute == 0:
        pytest.skip("inside the one-minute window")
    with pytest.raises(errors.OutsideChangeWindow) as refused:
        publish.audience_publish(actor=actor("operator", production), audience=target)
    assert "next_window_at" in refused.value.extra


# --- what publish materializes is preview's reachable set ----------------------------------------


@pytest.mark.parametrize(
    "rules",
    [
        {"all": [{"attr": "region", "op": "eq", "value": "EU"}]},
        {"all": [{"attr": "region", "op": "eq", "value": "EU"}, {"consent": "email", "is": True}]},
        {"consent": "email", "is": True},
        {"all": [{"all": [{"consent": "email", "is": True}]}, {"attr": "region", "op": "neq", "value": "UK"}]},
        {"any": [{"consent": "email", "is": True}, {"attr": "region", "op": "eq", "value": "UK"}]},
        {"all": [{"consent": "email", "is": False}]},
        {"all": [{"consent": "sms", "is": True}]},
        {"not": {"consent": "email", "is": True}},
    ],
)
def test_members_are_exactly_the_reachable_set(sandbox, rules):
    from audiences.models import RegionalRestriction, SuppressionEntry, SuppressionList

    people(sandbox, "eu", 3)
    people(sandbox, "eu-denied", 2, consent="denied")
    people(sandbox, "uk", 2, region="UK")
    people(sandbox, "mea-sms", 2, region="MEA", channel="sms")
    suppressed = people(sandbox, "suppressed", 1)[0]
    listed = SuppressionList.objects.create(environment=sandbox, name="complaints")
    SuppressionEntry.objects.create(suppression_list=listed, external_id=suppressed.external_id)
    RegionalRestriction.objects.create(
        environment=sandbox, region="UK", channel="email", kind="blocked", description="No email to the UK."
    )
    from audiences.reach import matching_queryset, reachability, reachable_queryset

    now = timezone.now()
    gated = matching_queryset(sandbox, rules, now=now, live_versions={}).filter(
        reachability(sandbox, "email").reachable
    )
    ours = set(reachable_queryset(sandbox, rules, "email", now=now, live_versions={}).values_list("pk", flat=True))
    assert ours == set(gated.values_list("pk", flat=True))


def test_a_long_statement_of_a_live_worker_is_not_taken_over(actor, sandbox, monkeypatch):
    """PostgreSQL: the worker holds the job's advisory lock; a stale heartbeat alone is not enough."""
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    operator, target, _ = _published_v1(actor, sandbox)
    outcome = publish.audience_publish(actor=operator, audience=target)
    monkeypatch.setattr(runner, "swap_live", lambda *a, **k: (_ for _ in ()).throw(WorkerKilled()))
    with pytest.raises(WorkerKilled):
        runner.publish_job_run(outcome.result.job.pk)
    monkeypatch.undo()
    Job.objects.filter(pk=outcome.result.job.pk).update(heartbeat_at=timezone.now() - runner.STALE_AFTER * 2)
    later = timezone.now()
    held, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        # Another session, as the worker busy with its INSERT would be.
        other = connections.create_connection("default")
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [runner._LOCK_CLASS, outcome.result.job.pk])
            held.set()
            release.wait(10)
        other.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert held.wait(10)
        assert runner.publish_job_run(outcome.result.job.pk, now=later) is None
        with pytest.raises(errors.PublishInProgress):
            publish.audience_publish(actor=operator, audience=fresh(target))
    finally:
        release.set()
        thread.join()
    assert runner.publish_job_run(outcome.result.job.pk, now=later).state == JobState.SUCCEEDED
