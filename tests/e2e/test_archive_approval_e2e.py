"""Archiving a published audience in pilot, in a real browser, under the approval policy of
PRODUCT.md §5 ("delete or archive a published audience": 2 approvals, an approver and a
developer or admin, distinct people, never the requester's own): the operator's delete of a
published audience files a request instead of archiving it; the operator cannot approve their
own request and the page says why; an approver approves with a comment, an admin gives the
second approval, the action runs as the operator and the audience is archived; the audit
timeline of the audience and of the request shows every step."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

from audiences.definitions import services as audience_services
from audiences.models import Audience, AudienceState
from audiences.publishing import services as publish
from governance.actors import Actor
from governance.models import ApprovalRequest, ApprovalState, Door, Environment
from tests.factories import ConsentFactory, ProfileFactory

NAME = "Lapsed EU customers"
RULES = {"all": [{"attr": "region", "op": "in", "value": ["EU"]}, {"consent": "email", "is": True}]}


def _published_pilot_audience() -> Audience:
    """The precondition, through the services: a small audience of team growth, published in
    pilot by demo-operator (below the publish threshold, so it goes live without approval)."""
    pilot = Environment.objects.get(slug="pilot")
    for n in range(6):
        profile = ProfileFactory(environment=pilot, external_id=f"pilot-eu-{n}", region="EU")
        ConsentFactory(profile=profile, channel="email", status="granted" if n < 5 else "denied")
    ProfileFactory(environment=pilot, external_id="pilot-us-0", region="US")
    actor = Actor(user=User.objects.get(username="demo-operator"), environment=pilot, door=Door.API)
    audience = audience_services.audience_create(
        actor=actor,
        name=NAME,
        channel="email",
        purpose="winback",
        description="EU customers who may hear from us by email.",
        rules=RULES,
        owner_team="growth",
    )
    outcome = publish.audience_publish(actor=actor, audience=audience)
    assert outcome.approval is None, "a reach of 5 is below pilot's publish threshold"
    audience.refresh_from_db()
    assert audience.state == AudienceState.PUBLISHED and audience.live_version.members == 5
    return audience


def _actions(page) -> list[tuple[str, str]]:
    """The audit timeline's entries as (action, outcome), newest first."""
    events = page.locator("ol#audit-events li.audit-event")
    expect(events.first).to_be_visible()
    return [
        (events.nth(i).get_attribute("data-action"), events.nth(i).get_attribute("data-outcome"))
        for i in range(events.count())
    ]


def test_an_operators_archive_of_a_published_pilot_audience_waits_for_an_approver_and_an_admin(open_browser):
    audience = _published_pilot_audience()
    detail_url = f"/audiences/{audience.pk}/"

    # --- the operator, in pilot, on the published audience's page ----------------------------------
    operator = open_browser("demo-operator")
    page = operator.page
    operator.switch_environment("pilot")
    operator.goto(detail_url)
    expect(page.locator("#audience-name")).to_have_attribute("data-state", "published")
    expect(page.locator("#delete-button")).to_have_text("Archive…")
    expect(page.locator("#delete-approval-note")).to_have_text(
        "Archiving it needs 2 approvals: an approver and a developer or admin."
    )
    expect(page.locator(".approval-notice")).to_have_count(0)
    operator.shot("detail-published")

    # Delete… of a published audience: the confirmation says it archives, after two approvals.
    page.locator("#delete-button").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Archive “{NAME}”?")
    expect(page.locator("#delete-approval-note")).to_contain_text("needs 2 approvals")
    expect(page.locator("#delete-approval-note")).to_contain_text("Nothing changes until then.")
    confirm = page.locator("#delete-confirm")
    expect(confirm).to_have_text("Ask for approval to archive it")
    operator.shot("delete-confirm")
    confirm.click()

    # The request is filed, not the archive.
    notice = page.locator(".approval-notice[data-approval-id]")
    expect(notice).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Your request to archive “{NAME}” waits for approval")
    expect(notice).to_contain_text("Waiting for approval: 0 of 2")
    expect(notice).to_contain_text(f"Archive the published audience '{NAME}'")
    expect(notice).to_contain_text("an approver and a developer or admin approve it")
    expect(notice).to_contain_text("Nobody approves their own request.")
    approval_id = int(notice.get_attribute("data-approval-id"))
    operator.shot("approval-filed")
    request = ApprovalRequest.objects.get(pk=approval_id)
    assert (request.action, request.state, request.target_id) == ("audience.archive", "pending", str(audience.pk))
    assert request.requester.username == "demo-operator"
    audience.refresh_from_db()
    assert audience.state == AudienceState.PUBLISHED

    # The audience's page shows the open request; the audience is still published, and a second
    # archive is not offered while this one waits.
    page.get_by_role("link", name=f"Back to {NAME}").click()
    expect(page.locator("#audience-name")).to_have_attribute("data-state", "published")
    expect(page.locator(f'.approval-notice[data-approval-id="{approval_id}"]')).to_contain_text(
        "Waiting for approval: 0 of 2"
    )
    expect(page.locator("#delete-button")).to_have_attribute("data-allowed", "false")
    expect(page.locator("#delete-button")).to_have_accessible_description(
        re.compile(re.escape(f"Archiving “{NAME}” waits for approval already (request {approval_id})."))
    )
    operator.shot("detail-waiting")

    # --- the operator's inbox and request: no vote on their own request ------------------------------
    operator.goto("/approvals/")
    mine = page.locator(f'#mine li.request[data-approval-id="{approval_id}"]')
    expect(mine).to_have_attribute("data-state", "pending")
    expect(mine).to_contain_text(f"Archive the published audience '{NAME}'")
    expect(mine).to_contain_text("0 of 2 approvals")
    expect(mine).to_contain_text("Asked by demo-operator")
    expect(page.locator(f'#waiting li.request[data-approval-id="{approval_id}"]')).to_have_count(0)
    expect(page.locator(f'#open li.request[data-approval-id="{approval_id}"]')).to_be_visible()
    operator.shot("inbox-operator")
    mine.get_by_role("link").click()
    expect(page.locator("#approval-summary")).to_have_attribute("data-state", "pending")
    expect(page.locator("#approve-button")).to_have_count(0)
    expect(page.locator("#reject-button")).to_have_count(0)
    refusal = page.locator("#vote-refusal")
    expect(refusal).to_have_attribute("data-code", "self_approval")
    expect(refusal).to_contain_text("You filed this request, so you cannot approve it")
    expect(refusal).to_contain_text("no one approves their own request")
    expect(refusal).to_contain_text("An approver and a developer or admin must approve it")
    expect(page.locator("#cancel-button")).to_be_visible()
    expect(page.locator("#policy-words")).to_contain_text("2 approvals")
    expect(page.locator("#approval-steps tr[data-filled='false']")).to_have_count(2)
    operator.shot("request-operator")

    # --- an approver approves with a comment ---------------------------------------------------------
    approver = open_browser("demo-approver")
    approver.switch_environment("pilot")
    approver.goto("/approvals/")
    waiting = approver.page.locator(f'#waiting li.request[data-approval-id="{approval_id}"]')
    expect(waiting).to_contain_text(f"Archive the published audience '{NAME}'")
    approver.shot("inbox-approver")
    waiting.get_by_role("link").click()
    expect(approver.page.locator("#approval-summary")).to_have_attribute("data-state", "pending")
    approver.page.get_by_label("Comment").fill("Lapsed segment retired with the spring plan.")
    approver.shot("request-approver")
    approver.page.locator("#approve-button").click()
    expect(approver.page.locator("#approval-count")).to_have_text("1 of 2 approvals")
    expect(approver.page.locator("#approval-summary")).to_have_attribute("data-state", "pending")
    vote = approver.page.locator('#approval-votes li[data-voter="demo-approver"]')
    expect(vote).to_have_attribute("data-decision", "approve")
    expect(vote).to_contain_text("Lapsed segment retired with the spring plan.")
    expect(approver.page.locator("#approval-status")).to_contain_text("Waiting for a developer or admin")
    # One person, one vote: the approver has no second one.
    expect(approver.page.locator("#approve-button")).to_have_count(0)
    approver.shot("request-approved-once")
    audience.refresh_from_db()
    assert audience.state == AudienceState.PUBLISHED, "one approval of two archives nothing"

    # --- an admin gives the second approval; it runs as the operator ---------------------------------
    admin = open_browser("demo-admin")
    admin.switch_environment("pilot")
    admin.goto(f"/approvals/{approval_id}/")
    expect(admin.page.locator("#approval-count")).to_have_text("1 of 2 approvals")
    admin.shot("request-admin")
    admin.page.locator("#approve-button").click()
    expect(admin.page.locator("#approval-summary")).to_have_attribute("data-state", "executed")
    outcome = admin.page.locator("#approval-outcome")
    expect(outcome).to_have_attribute("data-outcome", "executed")
    expect(outcome).to_contain_text("as demo-operator")
    expect(outcome).to_contain_text("is archived; its members stop syncing")
    expect(admin.page.locator("#approval-count")).to_have_text("2 of 2 approvals")
    expect(admin.page.locator("#approval-votes li[data-decision='approve']")).to_have_count(2)
    expect(admin.page.locator("#approval-steps tr[data-filled='true']")).to_have_count(2)
    admin.shot("request-executed")

    # --- the audience is archived ---------------------------------------------------------------------
    operator.goto(detail_url)
    expect(page.locator("#audience-name")).to_have_attribute("data-state", "archived")
    expect(page.locator("#audience-state")).to_have_text("Archived")
    expect(page.locator("#delete-button")).to_have_attribute("data-allowed", "false")
    expect(page.locator("#delete-button")).to_have_accessible_description(re.compile("archived already"))
    expect(page.locator("#edit-button")).to_have_attribute("data-allowed", "false")
    # one line says why for Edit, Publish and Archive; Copy starts a new draft from its rules
    expect(page.locator("#action-bar .disabled-reason")).to_have_count(1)
    expect(page.locator("#copy-button")).to_have_attribute("data-allowed", "true")
    expect(page.locator(".approval-notice")).to_have_count(0)
    operator.shot("detail-archived")
    audience.refresh_from_db()
    assert audience.state == AudienceState.ARCHIVED
    assert ApprovalRequest.objects.get(pk=approval_id).state == ApprovalState.EXECUTED

    # --- every step in the audit timeline ---------------------------------------------------------------
    # The operator's own actions on the audience: created, published (the job's version went
    # live), asked to archive, archived (run as the operator once approved).
    page.locator("#timeline-link").click()
    page.wait_for_url(re.compile(rf"/audit/\?target=audiences\.audience:{audience.pk}$"))
    assert _actions(page) == [
        ("audience.archive", "allowed"),
        ("audience.archive", "approval_requested"),
        ("audience.published", "allowed"),
        ("audience.publish", "allowed"),
        ("audience.create", "allowed"),
    ]
    operator.shot("audit-audience")

    # The request's own history, as the admin (who reads everyone's): filed, two votes, executed.
    admin.goto(f"/audit/?target=governance.approvalrequest:{approval_id}")
    assert _actions(admin.page) == [
        ("approval.execute", "allowed"),
        ("approval.approve", "allowed"),
        ("approval.approve", "allowed"),
    ]
    votes = admin.page.locator('ol#audit-events li.audit-event[data-action="approval.approve"]')
    expect(votes.nth(0)).to_contain_text("demo-admin")
    expect(votes.nth(1)).to_contain_text("demo-approver")
    admin.shot("audit-request")
