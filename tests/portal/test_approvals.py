"""The approvals inbox and a request's page: requests in business terms, who may vote (and
why not), approve / reject / cancel through the same services as the API, refusals shown
in place, and the dual-control archive of a pilot audience run to the end (PRODUCT.md §5)."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.definitions import services as audience_services
from audiences.models import Audience, AudienceState
from audiences.suppressions.services import suppression_entries_change
from governance import policy
from governance.actors import Actor
from governance.approvals import approval_approve, approval_request_create
from governance.models import ApprovalRequest, ApprovalState, AuditEvent, Door, Environment
from tests.factories import AudienceFactory, AudienceVersionFactory
from tests.portal.conftest import htmx

pytestmark = pytest.mark.django_db


def text(response) -> str:
    """The page's text as a reader sees it: no tags, entities decoded, whitespace collapsed."""
    flat = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))
    for mark in ".,:;)":
        flat = flat.replace(f" {mark}", mark)
    return flat.replace("( ", "(")


def body(response) -> str:
    return response.content.decode()


def actor_of(client, environment: Environment) -> Actor:
    return Actor(user=client.user, environment=environment, door=Door.PORTAL, request_id="req_test")


def file_archive(
    client, environment: Environment, name: str = "Spring EU buyers", owner: str = "growth"
) -> ApprovalRequest:
    """The requester's DELETE of a published audience: an approval request in pilot."""
    audience = AudienceFactory(environment=environment, name=name, owner_team__name=owner)
    AudienceVersionFactory(audience=audience, live=True)
    deletion = audience_services.audience_delete(actor=actor_of(client, environment), audience=audience)
    assert deletion.approval is not None, deletion
    return deletion.approval


def file_publish(client, environment: Environment, *, added: int = 1204, removed: int = 56) -> ApprovalRequest:
    """A big publish's request, filed through the workflow with the snapshot publish() stores."""
    audience = AudienceFactory(environment=environment, name="Spring EU buyers")
    actor = actor_of(client, environment)
    decision = policy.decide(actor, "audience.publish", audience, {"reach": 61_204})
    assert decision.needs_approval, decision
    return approval_request_create(
        actor=actor,
        action="audience.publish",
        target=audience,
        summary="Publish 'Spring EU buyers'",
        change={
            "audience_id": audience.pk,
            "name": audience.name,
            "channel": "email",
            "rules": audience.rules,
            "added": added,
            "removed": removed,
            "context": {"reach": 61_204},
        },
        decision=decision,
    )


def follow(client, response):
    """The page a successful form post sends the browser to (303 See Other)."""
    assert response.status_code == 303, response.content
    return client.get(response["Location"])


def detail_url(request: ApprovalRequest, suffix: str = "") -> str:
    return f"/approvals/{request.pk}/" + (f"{suffix}/" if suffix else "")


# --- the inbox ------------------------------------------------------------------------------


def test_the_inbox_says_each_request_in_business_terms(portal, pilot):
    operator = portal("operator", pilot)
    file_publish(operator, pilot)
    file_archive(operator, pilot, "Lapsed EU")
    suppression_entries_change(
        actor=actor_of(operator, pilot),
        list_name="global",
        add=[("external_id", "c-1"), ("external_id", "c-2"), ("email_hash", "ab" * 32)],
    )

    page = text(portal("approver", pilot).get("/approvals/"))

    assert "Publish 'Spring EU buyers': adds 1,204 people, removes 56 (reach 61,204 by email)" in page
    assert "Archive the published audience 'Lapsed EU'" in page
    assert "Change the global suppression list: add 3 entries" in page
    # the policy that asked, who approved so far, the state and the expiry
    assert "The policy 'Deleting or archiving a published audience' asks for 2 approvals: an approver and a " in page
    assert "approved by nobody yet" in page and "0 of 2 approvals" in page
    assert "Expires in 2 days" in page and "Pending" in page


def test_the_inbox_has_three_sections_and_the_requester_sees_their_own(portal, pilot):
    operator = portal("operator", pilot)
    request = file_archive(operator, pilot)

    approver_page = portal("approver", pilot).get("/approvals/").content.decode()
    operator_page = operator.get("/approvals/").content.decode()

    def section(page: str, name: str) -> str:
        start = page.index(f'data-section="{name}"')
        return page[start : page.index("</section>", start)]

    row = f'data-approval-id="{request.pk}"'
    for heading in ("Waiting for me", "My requests", "All open"):
        assert heading in approver_page
    assert row in section(approver_page, "waiting") and row in section(approver_page, "open")
    assert row not in section(approver_page, "mine")
    assert row not in section(operator_page, "waiting")
    assert row in section(operator_page, "mine") and 'data-state="pending"' in section(operator_page, "mine")


def test_the_inbox_of_the_sandbox_says_it_never_asks(portal):
    page = text(portal("approver").get("/approvals/"))
    assert "The sandbox never asks for approval" in page and "Nothing waits for your vote." in page


def test_someone_without_a_role_is_told_why_not(portal, pilot):
    response = portal("nobody", pilot).get("/approvals/")
    assert response.status_code == 403
    assert "See approval requests needs one of the roles" in text(response)


def test_the_inbox_answers_in_a_fixed_number_of_queries(portal, pilot, persona):
    operator, approver = portal("operator", pilot), portal("approver", pilot)
    admin = Actor(user=persona("admin"), environment=pilot, door=Door.API)

    def queries() -> CaptureQueriesContext:
        approver.get("/approvals/")  # warm: the permission cache was bumped by the new rows
        with CaptureQueriesContext(connection) as captured:
            assert approver.get("/approvals/").status_code == 200
        return captured

    approval_approve(actor=admin, request=file_archive(operator, pilot, "Audience 0"))
    file_archive(portal("operator2", pilot), pilot, "Theirs", owner="retention")
    few = queries()
    for index in range(1, 9):
        approval_approve(actor=admin, request=file_archive(operator, pilot, f"Audience {index}"))
    many = queries()

    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    assert len(many) <= 14, [q["sql"] for q in many.captured_queries]


# --- a request's page: who may vote ---------------------------------------------------------


def test_the_requester_sees_no_approve_button_but_may_cancel(portal, pilot):
    operator = portal("operator", pilot)
    request = file_archive(operator, pilot)

    response = operator.get(detail_url(request))

    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="approve-button"' not in body and 'id="reject-button"' not in body
    assert 'data-code="self_approval"' in body
    assert "You filed this request, so you cannot approve it" in text(response)
    assert 'id="cancel-button"' in body


def test_a_forged_approval_by_the_requester_is_refused_with_the_hint_in_place(portal, pilot):
    operator = portal("operator", pilot)
    request = file_archive(operator, pilot)

    response = operator.post(detail_url(request, "approve"), {"comment": "looks fine to me"})

    assert response.status_code == 403
    page = text(response)
    assert 'data-code="self_approval"' in response.content.decode()
    assert "You cannot vote on your own request" in page
    assert "Someone else with the role the request names must approve it" in page
    assert 'data-environment="pilot"' in response.content.decode()  # a portal page, not an error page
    request.refresh_from_db()
    assert request.state == ApprovalState.PENDING and not request.votes.exists()
    refused = AuditEvent.objects.get(action="approval.approve", outcome="denied")
    assert refused.door == Door.PORTAL and refused.actor_label == "p-operator"


def test_without_an_eligible_role_you_see_why_and_who_can(portal, pilot):
    request = file_archive(portal("operator", pilot), pilot)

    response = portal("analyst", pilot).get(detail_url(request))

    page = text(response)
    assert 'id="approve-button"' not in body(response)
    assert "your roles (analyst) fill none of the open steps" in page
    assert "Ask an approver and a developer or admin to vote" in page


def test_a_compliance_reviewer_is_told_they_vote_on_exports_only(portal, pilot):
    request = file_archive(portal("operator", pilot), pilot)

    response = portal("compliance", pilot).get(detail_url(request))

    assert "Compliance reviewers vote on exports only." in text(response)
    assert 'id="approve-button"' not in body(response)


def test_a_request_of_another_environment_is_not_shown_there_but_says_where_it_is(portal, pilot, production):
    request = file_archive(portal("operator", pilot), pilot)
    approver = portal("approver", production)

    response = approver.get(detail_url(request))

    # read and voted on in its own environment only (issue 11, item 5): no vote form here
    assert response.status_code == 200 and f"Request {request.pk} is in Pilot" in text(response)
    assert 'id="approve-button"' not in body(response) and 'name="next_in" value="pilot"' in body(response)
    unknown = approver.get("/approvals/987654/")
    assert unknown.status_code == 404 and "No approval request" in text(unknown)


def test_the_detail_page_answers_in_a_fixed_number_of_queries(portal, pilot, persona):
    request = file_archive(portal("operator", pilot), pilot)
    approval_approve(actor=Actor(user=persona("approver"), environment=pilot, door=Door.API), request=request)
    admin = portal("admin", pilot)
    admin.get(detail_url(request))

    with CaptureQueriesContext(connection) as queries:
        assert admin.get(detail_url(request)).status_code == 200

    assert len(queries) <= 14, [q["sql"] for q in queries.captured_queries]


# --- votes ----------------------------------------------------------------------------------


def test_reject_without_a_comment_shows_the_hint_beside_the_comment(portal, pilot):
    request = file_archive(portal("operator", pilot), pilot)
    approver = portal("approver", pilot)

    response = approver.post(detail_url(request, "reject"), {"comment": "   "})

    assert response.status_code == 422
    page = text(response)
    assert 'data-code="comment_required"' in response.content.decode()
    assert "A rejection needs a comment" in page and "Say what should change" in page
    assert 'id="vote-comment"' in body(response)  # the form is still there, to try again
    assert 'id="vote-comment-error"' in body(response) and "A rejection needs a comment. Send a short reason." in page
    request.refresh_from_db()
    assert request.state == ApprovalState.PENDING


def test_reject_without_a_comment_by_htmx_answers_the_decision_panel(portal, pilot):
    request = file_archive(portal("operator", pilot), pilot)

    response = htmx(portal("approver", pilot), "post", detail_url(request, "reject"), {"comment": ""})

    body = response.content.decode()
    assert response.status_code == 422
    assert body.lstrip().startswith('<section class="card" aria-labelledby="decision-heading" id="decision">')
    assert "<html" not in body and 'data-code="comment_required"' in body


def test_a_comment_that_is_too_long_is_refused_in_place(portal, pilot):
    request = file_archive(portal("operator", pilot), pilot)

    response = portal("approver", pilot).post(detail_url(request, "approve"), {"comment": "x" * 2001})

    assert response.status_code == 422 and "The comment is too long" in text(response)
    assert not request.votes.exists()


def test_a_rejection_with_a_comment_ends_the_request(portal, pilot):
    operator = portal("operator", pilot)
    request = file_archive(operator, pilot)

    response = portal("approver", pilot).post(detail_url(request, "reject"), {"comment": "Campaign 'Spring' uses it."})

    assert response.status_code == 303 and response["Location"] == detail_url(request)
    request.refresh_from_db()
    assert request.state == ApprovalState.REJECTED
    after = operator.get(detail_url(request))
    assert 'data-outcome="rejected"' in body(after) and 'id="cancel-button"' not in body(after)
    assert "Rejected by p-approver: “Campaign 'Spring' uses it.”" in text(after)


def test_the_requester_cancels_and_others_may_not(portal, pilot):
    operator = portal("operator", pilot)
    request = file_archive(operator, pilot)

    forged = portal("approver", pilot).post(detail_url(request, "cancel"))
    assert forged.status_code == 403 and "Only the requester may cancel a request" in text(forged)

    response = follow(operator, operator.post(detail_url(request, "cancel")))

    request.refresh_from_db()
    assert request.state == ApprovalState.CANCELLED
    assert f"Cancelled: request {request.pk} will not run." in text(response)
    assert 'data-outcome="cancelled"' in body(response)


def test_a_vote_by_htmx_redirects_to_the_request(portal, pilot):
    request = file_archive(portal("operator", pilot), pilot)

    response = htmx(portal("approver", pilot), "post", detail_url(request, "approve"), {"comment": "ok"})

    assert response.status_code == 204 and response["HX-Redirect"] == detail_url(request)


def test_approvals_by_an_approver_and_an_admin_archive_the_audience(
    portal, pilot, eager_celery, django_capture_on_commit_callbacks
):
    operator = portal("operator", pilot)
    request = file_archive(operator, pilot, "Pilot EU")
    audience = Audience.objects.get(pk=request.target_id)

    # the approver fills the approver step; one more is needed
    approver = portal("approver", pilot)
    first = follow(approver, approver.post(detail_url(request, "approve"), {"comment": "Checked."}))
    page = text(first)
    assert "Approved (1 of 2). Still needed: a developer or admin." in page
    assert "1 of 2 approvals" in page and "approved by p-approver (approver)" in page
    # a second approver fills no open step: told why, and who can
    second_approver = portal("approver2", pilot).get(detail_url(request))
    assert "still needs a developer or admin" in text(second_approver)
    assert 'id="approve-button"' not in body(second_approver)

    # the admin's vote is the last: the action runs through Celery once the vote commits
    admin = portal("admin", pilot)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(detail_url(request, "approve"))
    assert response.status_code == 303

    request.refresh_from_db()
    audience.refresh_from_db()
    assert request.state == ApprovalState.EXECUTED, request.result
    assert audience.state == AudienceState.ARCHIVED
    after = admin.get(detail_url(request))
    assert 'data-outcome="executed"' in body(after)
    page = text(after)
    assert "Executed" in page and "The audience 'Pilot EU' is archived; its members stop syncing." in page
    assert "approved by p-approver (approver), p-admin (admin)" in page
    done = AuditEvent.objects.get(action="audience.archive", outcome="allowed")
    assert {ref["voter"] for ref in done.approval_refs} == {"p-approver", "p-admin"}
    votes = AuditEvent.objects.filter(action="approval.approve", outcome="allowed")
    assert {event.door for event in votes} == {Door.PORTAL}


def test_an_approved_publish_in_production_waits_for_the_change_window(portal, production):
    production.change_windows = [{"days": [0], "start": "09:00", "end": "09:01"}]
    production.save(update_fields=["change_windows"])
    request = file_publish(portal("operator", production), production)

    approver = portal("approver", production)
    response = follow(approver, approver.post(detail_url(request, "approve")))

    request.refresh_from_db()
    assert request.state == ApprovalState.APPROVED and request.scheduled_for is not None
    page = text(response)
    assert 'data-outcome="scheduled"' in body(response) and "the next change window" in page
    assert "scheduled for Mon" in page


def test_a_failed_run_shows_its_error_and_hint(portal, pilot):
    request = file_archive(portal("operator", pilot), pilot)
    ApprovalRequest.objects.filter(pk=request.pk).update(
        state=ApprovalState.FAILED,
        result={
            "error": {
                "code": "target_changed",
                "message": "Spring EU buyers changed after the request was approved.",
                "hint": "Nothing ran: file the action again so they see this one.",
            }
        },
    )

    response = portal("approver", pilot).get(detail_url(request))

    assert 'data-outcome="failed"' in body(response) and 'id="approve-button"' not in body(response)
    page = text(response)
    assert "It did not run: Spring EU buyers changed after the request was approved." in page
    assert "Nothing ran: file the action again so they see this one." in page


@pytest.mark.parametrize(
    ("action", "change", "summary", "words"),
    [
        (
            "audience.publish",
            {"name": "New buyers", "added": 1, "removed": 0, "channel": "sms", "context": {"reach": 60_001}},
            "",
            "Publish 'New buyers': adds 1 person, removes 0 (reach 60,001 by sms)",
        ),
        (
            "audience.rollback",
            {"version": 2, "context": {"reach": 9870}},
            "",
            "Roll 'Spring EU buyers' back to version 2 (9,870 members)",
        ),
        (
            "suppression.change_global",
            {"add": {"external_id": ["a"], "email_hash": []}, "remove": {"external_id": ["b", "c"]}},
            "",
            "Change the global suppression list: add 1 entry and remove 2 entries",
        ),
        (
            "flag.disable_personalization",
            {"flag": "new_recs"},
            "Switch off the personalization flag 'new_recs' (everyone: on → off) — scheduled for Mon",
            "Switch off the personalization flag 'new_recs' (everyone: on → off)",
        ),
        ("campaign.activate", {}, "Activate 'Spring' to 120,000 recipients", "Activate 'Spring' to 120,000 recipients"),
    ],
)
def test_words_of_each_kind_of_request(action, change, summary, words):
    from portal.templatetags.portal_words import approval_words

    request = ApprovalRequest(action=action, change=change, summary=summary, target_label="Spring EU buyers")

    assert approval_words(request) == words
