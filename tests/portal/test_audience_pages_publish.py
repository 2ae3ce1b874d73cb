"""Publishing from the portal: live job progress, the approval notice where the policy asks for
approvals, versions and rollback, delete or archive — each through the services the API calls,
each unsafe POST writing exactly one audit event."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.models import Audience, AudienceState, AudienceVersion
from governance.actors import Actor
from governance.approvals import approval_approve, approval_cancel, approval_execute
from governance.models import ApprovalPolicy, ApprovalRequest, AuditEvent, Door
from integrations.models import Job, JobState
from tests.audiences.publish_support import fresh, members_of, people, publish_now, rollback_now, run, set_consent
from tests.factories import AudienceFactory, AudienceVersionFactory
from tests.portal.conftest import htmx
from tests.portal.test_audience_pages import enabled, one_audit_event, reason

pytestmark = pytest.mark.django_db


def polls(body: str) -> bool:
    return 'hx-trigger="every 1s"' in body


# --- 3. publish with live progress -------------------------------------------------------------------


def test_publish_in_sandbox_shows_the_job_until_the_version_is_live(portal, sandbox, eager_celery):
    people(sandbox, "eu", 4)
    people(sandbox, "eu-denied", 2, consent="denied")
    target = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    client = portal("operator")

    # when: published from the detail page's form (htmx); the task is enqueued after commit
    with one_audit_event(action="audience.publish", outcome="allowed", door=Door.PORTAL):
        response = htmx(client, "post", f"/audiences/{target.pk}/publish/")

    # then: the progress panel of a queued job, polling itself every second
    assert response.status_code == 202
    body = response.content.decode()
    job = Job.objects.get(target_id=str(target.pk))
    assert f'id="job-{job.pk}"' in body and 'data-job-state="queued"' in body and polls(body)
    assert f'hx-get="/audiences/jobs/{job.pk}/"' in body
    assert "number 1 in the queue" in body and "You asked to publish" in body
    assert "{#" not in body and "{%" not in body

    # when: the worker runs it (the Celery task, in-process)
    from audiences.tasks import audience_publish_task

    audience_publish_task.delay(job.pk)

    # then: the next poll shows it succeeded, stops polling and says what went live
    with CaptureQueriesContext(connection) as queries:
        fragment = htmx(client, "get", f"/audiences/jobs/{job.pk}/")
    assert len(queries) <= 8
    body = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in body
    assert 'data-job-state="succeeded"' in body and not polls(body)
    assert "Version 1 is live: 4 members, adds 4, removes 0." in body
    assert 'aria-valuenow="100"' in body
    target = fresh(target)
    assert target.state == AudienceState.PUBLISHED and target.live_version.number == 1


def oob_part(body: str, element_id: str) -> str:
    """The element with this id sent out of band (hx-swap-oob), up to the next one."""
    parts = re.split(r'(?=<\w+[^>]*hx-swap-oob="true")', body)
    found = [part for part in parts if re.match(rf'<\w+[^>]*\bid="{element_id}"[^>]*hx-swap-oob="true"', part)]
    assert found, f"#{element_id} is not sent out of band"
    return found[0]


def test_when_the_job_ends_the_audiences_page_gets_its_state_again(portal, sandbox):
    """Issue 11, item 3: the panel that says "Version 1 is live" also replaces the draft
    badge, Delete (now Archive), "No version is live yet" and the history, out of band."""
    people(sandbox, "eu", 4)
    target = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    client = portal("operator")
    detail = client.get(f"/audiences/{target.pk}/").content.decode()
    assert 'name="refresh" value="detail"' in detail  # the publish form asks for the refresh

    started = htmx(client, "post", f"/audiences/{target.pk}/publish/", {"refresh": "detail"}).content.decode()
    job = Job.objects.get(target_id=str(target.pk))
    assert f'hx-get="/audiences/jobs/{job.pk}/?refresh=detail"' in started
    assert "hx-swap-oob" not in started  # nothing has changed yet

    # while it runs, the polls carry nothing more
    assert "hx-swap-oob" not in htmx(client, "get", f"/audiences/jobs/{job.pk}/?refresh=detail").content.decode()
    run(job)
    with CaptureQueriesContext(connection) as queries:
        ended = htmx(client, "get", f"/audiences/jobs/{job.pk}/?refresh=detail")
    body = ended.content.decode()

    assert ended.status_code == 200 and "Version 1 is live: 4 members" in body
    heading = oob_part(body, "audience-name")
    assert 'data-state="published"' in heading and ">Published</span>" in heading
    bar = oob_part(body, "action-bar")
    assert ">Archive…</a>" in bar and ">Delete…<" not in bar
    assert 'id="publish-button" data-allowed="true"' in bar
    live = oob_part(body, "live-version")
    assert "Version 1</strong> is live" in live and 'id="live-reach">4<' in live
    assert "No version is live yet" not in body
    assert "went live" in oob_part(body, "history")
    assert "rules-state" in body
    # a fixed number of queries, once, when the job has ended
    assert len(queries) <= 14, len(queries)

    # the job's own page (no refresh asked) gets the panel alone
    plain = htmx(client, "get", f"/audiences/jobs/{job.pk}/").content.decode()
    assert "hx-swap-oob" not in plain and 'data-job-state="succeeded"' in plain


def test_publish_end_to_end_with_the_task_after_commit(
    portal, sandbox, eager_celery, django_capture_on_commit_callbacks
):
    people(sandbox, "eu", 3)
    target = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    client = portal("operator")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/audiences/{target.pk}/publish/")

    # without htmx: to the job's page, which tells the same story
    assert response.status_code == 303
    job = Job.objects.get(target_id=str(target.pk))
    assert response["Location"] == f"/audiences/jobs/{job.pk}/"
    assert job.state == JobState.SUCCEEDED
    page = client.get(response["Location"]).content.decode()
    assert f"<h1>Job {job.pk}: publishing “Spring EU buyers”</h1>" in page
    assert "Version 1 is live: 3 members" in page and not polls(page)
    detail = client.get(f"/audiences/{target.pk}/").content.decode()
    assert 'id="live-reach">3<' in detail
    history = detail.split('id="history"')[1]
    assert "p-operator published &#x27;Spring EU buyers&#x27; (version 1)" in history
    assert "Version 1 of &#x27;Spring EU buyers&#x27; went live (published by p-operator)" in history


def test_a_failed_job_shows_its_errors_with_hints(portal, sandbox, monkeypatch):
    from audiences.publishing import runner

    people(sandbox, "eu", 2)
    target = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    client = portal("operator")
    htmx(client, "post", f"/audiences/{target.pk}/publish/")
    job = Job.objects.get(target_id=str(target.pk))

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(runner, "swap_live", crash)
    run(job)

    body = htmx(client, "get", f"/audiences/jobs/{job.pk}/").content.decode()
    assert 'data-job-state="failed"' in body and not polls(body)
    # The error in words and its hint; the raw exception is for operators (the admin), not the page.
    assert "an unexpected error occurred" in body and "Publish again" in body
    assert "disk full" not in body


def test_a_refused_publish_shows_the_title_and_hint_in_the_panel(portal, sandbox):
    archived = AudienceFactory(environment=sandbox, state=AudienceState.ARCHIVED)
    response = htmx(portal("operator"), "post", f"/audiences/{archived.pk}/publish/")
    assert response.status_code == 409
    body = response.content.decode()
    assert body.lstrip().startswith('<div class="problem"') and "The audience is archived" in body


def test_publishing_invalid_rules_lists_every_problem(portal, sandbox):
    broken = AudienceFactory(environment=sandbox, rules={"all": [{"attr": "regoin", "op": "eq", "value": "EU"}]})
    response = htmx(portal("operator"), "post", f"/audiences/{broken.pk}/publish/")
    assert response.status_code == 422
    body = response.content.decode()
    assert "The audience rules are not valid" in body and "did you mean" in body


def test_a_job_of_another_environment_is_not_found(portal, pilot, actor):
    people(pilot, "p", 1)
    outcome, _ = publish_now(actor("operator", pilot), AudienceFactory(environment=pilot, name="Spring EU buyers"))
    response = portal("operator").get(f"/audiences/jobs/{outcome.result.job.pk}/")
    assert response.status_code == 404 and "No job" in response.content.decode()


# --- approvals: publish above the threshold, archive of a published audience -----------------------------


def test_publish_in_pilot_over_the_threshold_waits_for_approval(portal, pilot):
    ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").update(threshold=2)
    people(pilot, "pilot", 3)
    target = AudienceFactory(environment=pilot, name="Spring EU buyers")
    client = portal("operator", pilot)

    # the page says the policy before anyone publishes
    detail = client.get(f"/audiences/{target.pk}/").content.decode()
    assert "Publishing needs 1 approval from an approver when the reach is above 2" in detail

    with one_audit_event(action="audience.publish", outcome="approval_requested"):
        response = htmx(client, "post", f"/audiences/{target.pk}/publish/")

    assert response.status_code == 202
    request = ApprovalRequest.objects.get(action="audience.publish", target_id=str(target.pk))
    body = response.content.decode()
    assert "Waiting for approval: 0 of 1" in body
    assert "Publish &#x27;Spring EU buyers&#x27;: adds 3 people, removes 0" in body
    assert "once an approver approves it" in body
    assert f'data-approval-id="{request.pk}"' in body and f'href="/approvals/{request.pk}/"' in body
    assert not AudienceVersion.objects.filter(audience=target).exists()

    # the audience's page shows the open request and Publish greyed out with why and what to do
    detail = client.get(f"/audiences/{target.pk}/").content.decode()
    assert "Waiting for approval: 0 of 1" in detail
    assert not enabled(detail, "publish-button")
    assert f"Publishing “Spring EU buyers” waits for approval already (request {request.pk})." in reason(
        detail, "publish-button"
    )
    # a forged POST is still refused by the service, in place
    again = htmx(client, "post", f"/audiences/{target.pk}/publish/")
    assert again.status_code == 409 and "An approval request for this is already open" in again.content.decode()

    # once the requester cancels, Publish is offered again
    approval_cancel(actor=Actor(user=client.user, environment=pilot, door=Door.PORTAL), request=request)
    assert enabled(client.get(f"/audiences/{target.pk}/").content.decode(), "publish-button")


def test_a_published_audience_over_the_threshold_says_publishing_needs_approval(portal, pilot):
    ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").update(threshold=2)
    target = AudienceFactory(environment=pilot, name="Spring EU buyers")
    AudienceVersionFactory(audience=target, live=True, memberships=people(pilot, "pilot", 3))
    detail = portal("operator", pilot).get(f"/audiences/{target.pk}/").content.decode()
    assert "Publishing this needs 1 approval from an approver." in detail
    assert enabled(detail, "publish-button")


def test_without_htmx_the_approval_notice_is_a_page(portal, pilot):
    ApprovalPolicy.objects.filter(environment=pilot, action="audience.publish").update(threshold=0)
    people(pilot, "pilot", 1)
    target = AudienceFactory(environment=pilot, name="Spring EU buyers")
    response = portal("operator", pilot).post(f"/audiences/{target.pk}/publish/")
    assert response.status_code == 202
    body = response.content.decode()
    assert "<h1>Your request to publish “Spring EU buyers” waits for approval</h1>" in body
    assert "Waiting for approval: 0 of 1" in body


def test_archiving_a_published_audience_in_pilot_needs_two_approvals(portal, persona, pilot):
    target = AudienceFactory(environment=pilot, name="Lapsed EU customers")
    AudienceVersionFactory(audience=target, live=True)
    client = portal("operator", pilot)

    confirm = client.get(f"/audiences/{target.pk}/delete/").content.decode()
    assert "<h1>Archive “Lapsed EU customers”?</h1>" in confirm
    assert "Archiving it needs 2 approvals: an approver and a developer or admin." in confirm
    assert "Ask for approval to archive it" in confirm

    with one_audit_event(action="audience.archive", outcome="approval_requested"):
        response = htmx(client, "post", f"/audiences/{target.pk}/delete/")

    assert response.status_code == 202
    body = response.content.decode()
    assert "Waiting for approval: 0 of 2" in body and "an approver and a developer or admin approve it" in body
    request = ApprovalRequest.objects.get(action="audience.archive", target_id=str(target.pk))
    assert fresh(target).state == AudienceState.PUBLISHED

    # an approver and an admin approve; it runs as the operator and the page shows it archived
    for name in ("approver", "admin"):
        approval_approve(actor=Actor(user=persona(name), environment=pilot, door=Door.PORTAL), request=request)
    approval_execute(request.pk)
    detail = client.get(f"/audiences/{target.pk}/").content.decode()
    assert 'data-state="archived"' in detail and not enabled(detail, "delete-button")


def test_while_an_archive_waits_for_approval_the_page_does_not_offer_a_second_one(portal, persona, pilot):
    target = AudienceFactory(environment=pilot, name="Lapsed EU customers")
    AudienceVersionFactory(audience=target, live=True)
    client = portal("operator", pilot)
    htmx(client, "post", f"/audiences/{target.pk}/delete/")
    request = ApprovalRequest.objects.get(action="audience.archive", target_id=str(target.pk))

    # the audience's page shows the open request, and Archive… greyed out with why and what to do
    why = f"Archiving “Lapsed EU customers” waits for approval already (request {request.pk})."
    detail = client.get(f"/audiences/{target.pk}/").content.decode()
    assert "Waiting for approval: 0 of 2" in detail
    assert not enabled(detail, "delete-button") and why in reason(detail, "delete-button")
    assert "its requester may cancel it there to file a new one" in reason(detail, "delete-button")
    confirm = client.get(f"/audiences/{target.pk}/delete/").content.decode()
    assert not enabled(confirm, "delete-confirm") and why in reason(confirm, "delete-confirm")
    assert "Ask for approval to archive it" not in confirm

    # a forged POST is still refused by the service
    again = client.post(f"/audiences/{target.pk}/delete/")
    assert again.status_code == 409 and "An approval request for this is already open" in again.content.decode()

    # once the requester cancels, Archive… is offered again
    approval_cancel(actor=Actor(user=client.user, environment=pilot, door=Door.PORTAL), request=request)
    assert enabled(client.get(f"/audiences/{target.pk}/").content.decode(), "delete-button")


# --- 8. delete and archive in a sandbox ----------------------------------------------------------------


def test_deleting_a_draft(portal, sandbox):
    target = AudienceFactory(environment=sandbox, name="Throwaway")
    client = portal("operator")
    confirm = client.get(f"/audiences/{target.pk}/delete/").content.decode()
    assert "<h1>Delete the draft “Throwaway”?</h1>" in confirm and 'id="delete-confirm"' in confirm

    with one_audit_event(action="audience.delete"):
        response = client.post(f"/audiences/{target.pk}/delete/")

    assert response.status_code == 303 and response["Location"] == "/audiences/"
    assert not Audience.objects.filter(pk=target.pk).exists()
    assert "Deleted the draft “Throwaway”." in client.get("/audiences/").content.decode()


def test_archiving_a_published_audience_in_a_sandbox_runs_at_once(portal, sandbox):
    target = AudienceFactory(environment=sandbox)
    AudienceVersionFactory(audience=target, live=True)
    client = portal("operator")
    with one_audit_event(action="audience.archive", outcome="allowed"):
        response = htmx(client, "post", f"/audiences/{target.pk}/delete/")
    assert response.status_code == 204 and response["HX-Redirect"] == f"/audiences/{target.pk}/"
    assert fresh(target).state == AudienceState.ARCHIVED


def test_delete_confirmation_for_who_may_not(portal, sandbox):
    target = AudienceFactory(environment=sandbox)
    body = portal("operator2").get(f"/audiences/{target.pk}/delete/").content.decode()
    assert not enabled(body, "delete-confirm") and "growth" in reason(body, "delete-confirm")
    assert 'id="delete-form"' not in body


def test_an_audience_in_use_is_not_deleted(portal, sandbox):
    used = AudienceFactory(environment=sandbox, name="Base")
    AudienceVersionFactory(audience=used, live=True)
    AudienceFactory(environment=sandbox, name="User of base", rules={"in_audience": used.pk})
    response = portal("operator").post(f"/audiences/{used.pk}/delete/")
    assert response.status_code == 409 and "The audience is in use" in response.content.decode()


# --- 4. versions and rollback -----------------------------------------------------------------------------


@pytest.fixture
def two_versions(actor, sandbox):
    """Version 1 with three people, version 2 (live) after one withdrew consent and two joined."""
    operator = actor("operator", door=Door.PORTAL)
    first = people(sandbox, "first", 3)
    target = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    publish_now(operator, target)
    set_consent(first[:1], "denied")
    people(sandbox, "join", 2)
    publish_now(operator, fresh(target))
    return fresh(target), first


def test_versions_list_counts_diff_sizes_who_when_and_the_live_one(portal, two_versions):
    target, _ = two_versions
    client = portal("operator")
    client.get(f"/audiences/{target.pk}/versions/")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/audiences/{target.pk}/versions/")
    body = response.content.decode()
    assert response.status_code == 200 and len(queries) <= 10
    assert re.findall(r'<tr data-version="(\d+)"', body) == ["2", "1"]
    v2 = re.search(r'<tr data-version="2"(.*?)</tr>', body, re.S).group(0)
    assert 'data-live="true"' in v2 and 'id="live-marker"' in v2
    assert "+2" in v2 and "−1" in v2 and ">4<" in v2 and "p-operator" in v2
    v1 = re.search(r'<tr data-version="1"(.*?)</tr>', body, re.S).group(0)
    assert "+3" in v1 and f'href="/audiences/{target.pk}/rollback/?version=1"' in v1
    assert "rollback/?version=2" not in body  # the live one is not offered


def test_rollback_after_confirmation_restores_the_earlier_version(portal, two_versions, eager_celery):
    target, first = two_versions
    client = portal("operator")

    confirm = client.get(f"/audiences/{target.pk}/rollback/?version=1").content.decode()
    assert "<h1>Roll “Spring EU buyers” back to version 1?</h1>" in confirm
    assert 'id="rollback-confirm"' in confirm and 'name="version" value="1"' in confirm
    assert 'id="rebuild-warning"' not in confirm

    with one_audit_event(action="audience.rollback", outcome="allowed"):
        response = client.post(f"/audiences/{target.pk}/rollback/", {"version": "1"})

    assert response.status_code == 303
    job = Job.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))
    run(job)
    target = fresh(target)
    v3 = target.live_version
    assert v3.number == 3 and v3.rebuilt_from.number == 1
    # the members of version 1, minus the one who withdrew consent since
    assert members_of(v3) == {p.external_id for p in first[1:]}
    page = client.get(response["Location"]).content.decode()
    assert "Rolling back" in page and "Version 3 is live" in page
    versions = client.get(f"/audiences/{target.pk}/versions/").content.decode()
    assert "rollback to v1" in versions


def test_rolling_back_to_a_version_whose_members_were_pruned_warns_it_is_rebuilt(portal, two_versions):
    target, _ = two_versions
    AudienceVersion.objects.filter(audience=target, number=1).update(members_retained=False)
    client = portal("operator")

    confirm = client.get(f"/audiences/{target.pk}/rollback/?version=1").content.decode()
    assert 'id="rebuild-warning"' in confirm and "rebuilt from its rules snapshot" in confirm

    response = htmx(client, "post", f"/audiences/{target.pk}/rollback/", {"version": "1"})
    assert response.status_code == 202
    assert "rebuilt from its rules snapshot" in response.content.decode()
    # without htmx the warning rides along to the job page (the queued build is replaced)
    plain = portal("operator")
    redirected = plain.post(f"/audiences/{target.pk}/rollback/", {"version": "1"})
    assert redirected.status_code == 303
    assert "rebuilt from its rules snapshot" in plain.get(redirected["Location"]).content.decode()


@pytest.mark.parametrize(
    ("version", "status", "words"),
    [
        ("abc", 422, "is not a version number"),
        ("", 422, "Choose the version to make live again"),
        ("99", 404, "The audience has no such version"),
        ("2", 409, "That version is live already"),
    ],
)
def test_bad_rollback_inputs_show_the_hint(portal, two_versions, version, status, words):
    target, _ = two_versions
    before = AuditEvent.objects.count()
    response = htmx(portal("operator"), "post", f"/audiences/{target.pk}/rollback/", {"version": version})
    assert response.status_code == status
    body = response.content.decode()
    assert 'class="problem"' in body and words in body
    assert AuditEvent.objects.count() == before


def test_rollback_confirmation_of_unknown_or_live_versions(portal, two_versions):
    target, _ = two_versions
    client = portal("operator")
    unknown = client.get(f"/audiences/{target.pk}/rollback/?version=99")
    assert unknown.status_code == 404 and "The audience has no such version" in unknown.content.decode()
    live = client.get(f"/audiences/{target.pk}/rollback/?version=2").content.decode()
    assert 'id="rollback-refusal"' in live and "is the live version already" in live
    assert 'id="rollback-form"' not in live


def test_an_analyst_sees_versions_but_no_rollback(portal, two_versions):
    target, _ = two_versions
    body = portal("analyst").get(f"/audiences/{target.pk}/versions/").content.decode()
    assert 'id="rollback-reason"' in body and "campaign_operator" in body
    assert "rollback/?version=" not in body


def test_after_a_rollback_the_steps_that_removed_nobody_say_0_not_blank(portal, actor, sandbox, api):
    """Issue 11, item 12: the live version's Removed column and the versions' counts say 0
    where nobody was removed; the API's versions say 0 too (never null once built)."""
    operator = actor("operator", door=Door.PORTAL)
    people(sandbox, "first", 3)
    target = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    publish_now(operator, target)
    people(sandbox, "join", 2)
    publish_now(operator, fresh(target))
    rollback_now(operator, fresh(target), 1)
    client = portal("operator")

    detail = client.get(f"/audiences/{target.pk}/").content.decode()
    steps = re.findall(
        r'<tr><td>([^<]+)</td><td class="num">([^<]*)</td><td class="num">([^<]*)</td></tr>',
        detail.split('id="live-version"', 1)[1],
    )
    assert steps == [
        ("Members of version 1", "0", "3"),
        ("No longer reachable (address, consent, suppression, restriction)", "0", "3"),
        ("Reachable", "0", "3"),
    ]
    versions = client.get(f"/audiences/{target.pk}/versions/").content.decode()
    v3 = re.search(r'<tr data-version="3"(.*?)</tr>', versions, re.S).group(0)
    assert re.findall(r'<td class="num">([^<]*)</td>', v3) == ["3", "3", "0", "−2"]

    # the API: the same counts, 0 and not null
    body = api("operator").get(f"/api/v1/audiences/{target.pk}/versions").json()
    rolled_back = next(v for v in body["results"] if v["number"] == 3)
    assert (rolled_back["added"], rolled_back["removed"]) == (0, 2)
    assert [step["removed"] for step in rolled_back["waterfall"]] == [0, 0, 0]
