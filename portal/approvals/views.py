"""The approvals inbox and one request's page: approve, reject with a comment, cancel.

The same selectors and services as governance/api/approvals.py: `approval_list`,
`approval_get`, `approval_standing` (where a request stands and whether this person may
vote or cancel, and why not), `approval_approve`, `approval_reject`, `approval_cancel`.
What a person may not do is not offered; a forged POST is refused by the service, and its
title and hint are shown in place on the request's page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from governance.approvals import services, windows
from governance.approvals.selectors import (
    acting_environments,
    approval_elsewhere,
    approval_get,
    approval_list,
    approval_standing,
)
from governance.models import ApprovalRequest, ApprovalState
from marketerapi.problems import ApplicationError, InvalidInput, NotFound
from portal.templatetags.portal_words import (
    approval_words,
    approvals_count,
    approved_by,
    object_url,
    policy_words,
    when_words,
)
from portal.web import Problem, hx_redirect, portal_actor, portal_view

# Each inbox section lists at most this many requests, newest first (pending requests
# expire after 72 hours, so "waiting" and "all open" stay short).
SECTION_ROWS = 50
COMMENT_MAX = 2000


class CommentForm(forms.Form):
    """The comment of a vote: optional to approve, required to reject (the service says so)."""

    comment = forms.CharField(required=False, max_length=COMMENT_MAX, strip=True)


def _detail_url(approval_id: int) -> str:
    return reverse("portal-approvals:detail", kwargs={"approval_id": approval_id})


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


# --- the inbox --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One request as the inbox lists it, its words prepared here so a long list renders fast."""

    request: ApprovalRequest
    url: str
    words: str
    count: str
    approved_by: str
    policy: str
    when: str
    requester: str
    filed_iso: str
    filed: str


def _row(request: ApprovalRequest) -> Row:
    filed = request.created_at.astimezone(UTC)
    return Row(
        request=request,
        url=object_url("governance.approvalrequest", request.pk),
        words=approval_words(request),
        count=approvals_count(request),
        approved_by=approved_by(request),
        policy=policy_words(request),
        when=when_words(request),
        requester=request.requester.get_username(),
        filed_iso=filed.isoformat(),
        filed=f"{filed:%Y-%m-%d %H:%M} UTC",
    )


@require_GET
@portal_view
def inbox(request: HttpRequest) -> HttpResponse:
    """Waiting for me, my requests (any state) and all open requests, of every environment
    the person may act in: a fixed number of queries whatever the number of environments."""
    actor = portal_actor(request)
    rows: dict[int, Row] = {}  # a request may be in two sections: its words are made once

    def section(requests: Any) -> list[Row]:
        out = []
        for request_ in requests[:SECTION_ROWS]:
            if request_.pk not in rows:
                rows[request_.pk] = _row(request_)
            out.append(rows[request_.pk])
        return out

    # Every environment the person may act in (the policy asked per environment): an
    # approver in the sandbox sees what waits in production, labelled, and votes there.
    environments = acting_environments(actor)
    waiting = section(approval_list(actor=actor, waiting_for_me=True, environments=environments))
    mine = section(approval_list(actor=actor, mine=True, environments=environments))
    open_requests = section(approval_list(actor=actor, state="pending", environments=environments))
    names = _names([env.name for env in environments]) or actor.environment.name
    return render(
        request,
        "portal/approvals/inbox.html",
        {
            "sections": [
                {
                    "id": "waiting",
                    "title": "Waiting for me",
                    "intro": "Requests you may vote on now: not yours, not voted on yet, and your roles fill a step "
                    "that is still open.",
                    "empty": "Nothing waits for your vote.",
                    "rows": waiting,
                },
                {
                    "id": "mine",
                    "title": "My requests",
                    "intro": "What you asked for, and where each request stands.",
                    "empty": "You have not filed any request.",
                    "rows": mine,
                },
                {
                    "id": "open",
                    "title": "All open",
                    "intro": f"Every request still waiting for votes in {names}.",
                    "empty": "No request is waiting for votes.",
                    "rows": open_requests,
                },
            ],
            "row_limit": SECTION_ROWS,
            "acting_in": names,
        },
    )


def _names(names: list[str]) -> str:
    return names[0] if len(names) <= 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# --- one request ------------------------------------------------------------------------------


def _windows_note(environment: Any) -> str:
    """The environment's change windows in words ("any time" without any)."""
    try:
        return windows.describe_windows(environment)
    except ApplicationError as error:  # broken windows in the admin: say so, never fail the page
        return f"{error.title}. {error.hint}"


def _detail_context(request: HttpRequest, approval: ApprovalRequest) -> dict[str, Any]:
    actor = portal_actor(request)
    standing = approval_standing(request=approval, actor=actor)
    schedule = ""
    if approval.scheduled_for is not None:
        schedule = windows.describe_moment(approval.environment, approval.scheduled_for)
    return {
        "approval": approval,
        "standing": standing,
        "schedule": schedule,
        "change_windows": _windows_note(approval.environment),
        "windowed": approval.action in windows.WINDOWED_ACTIONS,
        "is_requester": actor.user is not None and approval.requester_id == actor.user.pk,
        "running": approval.state == ApprovalState.APPROVED and approval.executed_at is None and not schedule,
        "comment_max": COMMENT_MAX,
    }


def _render_detail(
    request: HttpRequest,
    approval_id: int,
    *,
    problem: Problem | None = None,
    comment: str = "",
    comment_errors: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> HttpResponse:
    actor = portal_actor(request)
    approval = approval_get(actor=actor, approval_id=approval_id)
    context = _detail_context(request, approval)
    context.update({"problem": problem, "comment": comment, "comment_errors": comment_errors or []})
    if problem is not None and _is_htmx(request):
        # The vote form's own panel, with the service's title and hint beside the comment.
        return render(request, "portal/approvals/_decision.html", context, status=status)
    return render(request, "portal/approvals/detail.html", context, status=status)


@require_GET
@portal_view
def detail(request: HttpRequest, approval_id: int) -> HttpResponse:
    """One request; a request of another environment the person may act in says where it
    is and offers to switch there (it is read and voted on in its own environment only)."""
    try:
        return _render_detail(request, approval_id)
    except NotFound:
        elsewhere = approval_elsewhere(actor=portal_actor(request), approval_id=approval_id)
        if elsewhere is None:
            raise
    return render(request, "portal/approvals/elsewhere.html", {"approval": elsewhere})


def _refused(request: HttpRequest, approval_id: int, error: ApplicationError, comment: str = "") -> HttpResponse:
    """A refusal shown in place on the request's page, at the service's status: its title
    and hint above the form, what is wrong with the comment beside the comment."""
    problem = Problem.of(error)
    comment_errors = problem.errors_at("/comment")
    problem = replace(problem, errors=[e for e in problem.errors if e not in comment_errors])
    return _render_detail(
        request, approval_id, problem=problem, comment=comment, comment_errors=comment_errors, status=error.status
    )


def _comment(request: HttpRequest) -> str:
    form = CommentForm(request.POST)
    if not form.is_valid():
        raise InvalidInput(
            f"A comment has at most {COMMENT_MAX:,} characters.",
            code="invalid_comment",
            title="The comment is too long",
            hint="Shorten it; link to a document for the long story.",
            errors=[
                {
                    "pointer": "/comment",
                    "code": "max_length",
                    "message": f"At most {COMMENT_MAX:,} characters.",
                    "hint": "Shorten it.",
                }
            ],
        )
    return str(form.cleaned_data["comment"])


def _after_vote(request: HttpRequest, outcome: services.VoteOutcome) -> HttpResponse:
    messages.success(request, outcome.message)
    for notice in outcome.notices:
        messages.warning(request, notice)
    return hx_redirect(request, _detail_url(outcome.request.pk))


def _vote(request: HttpRequest, approval_id: int, service: Callable[..., services.VoteOutcome]) -> HttpResponse:
    """Approve or reject: the same form, refusals shown in place, then the request's page."""
    actor = portal_actor(request)
    raw = request.POST.get("comment", "")
    try:
        comment = _comment(request)
        approval = approval_get(actor=actor, approval_id=approval_id)
        outcome = service(actor=actor, request=approval, comment=comment)
    except ApplicationError as error:
        if error.status == 404:
            raise
        return _refused(request, approval_id, error, raw)
    return _after_vote(request, outcome)


@require_POST
@portal_view
def approve(request: HttpRequest, approval_id: int) -> HttpResponse:
    return _vote(request, approval_id, services.approval_approve)


@require_POST
@portal_view
def reject(request: HttpRequest, approval_id: int) -> HttpResponse:
    return _vote(request, approval_id, services.approval_reject)


@require_POST
@portal_view
def cancel(request: HttpRequest, approval_id: int) -> HttpResponse:
    actor = portal_actor(request)
    try:
        approval = approval_get(actor=actor, approval_id=approval_id)
        cancelled = services.approval_cancel(actor=actor, request=approval)
    except ApplicationError as error:
        if error.status == 404:
            raise
        return _refused(request, approval_id, error)
    messages.success(request, f"Cancelled: request {cancelled.pk} will not run.")
    return hx_redirect(request, _detail_url(cancelled.pk))
