"""The marketer's front door: home and the environment switch (the error pages are the core's
`marketerapi.problems.error_page`, rendered in the portal's layout: settings.ERROR_PAGE_TEMPLATE).

Areas live in their own packages (portal/audiences, portal/approvals, portal/audit); every
view calls the same services and selectors as the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from governance.access.selectors import SESSION_ENVIRONMENT_KEY, environment_get
from governance.approvals.selectors import acting_environments, approval_list
from governance.audit.selectors import audit_events_of_actor, audit_read_scope
from governance.limits import selectors as quota_selectors
from governance.limits.quotas import QuotaStatus
from governance.models import Outcome
from integrations.jobs import selectors as jobs
from portal.web import can, portal_actor, portal_view

# How many rows each home card lists; each card links to its full page.
HOME_ROWS = 5
HOME_ACTIVITY_ROWS = 8


@dataclass(frozen=True)
class QuotaBar:
    status: QuotaStatus

    @property
    def level(self) -> str:
        """The bar's class: `full` at 100 %, `warn` from the warning threshold (80 %)."""
        if self.status.percent >= 100:
            return "full"
        return "warn" if self.status.is_warning else ""

    @property
    def width(self) -> str:
        return f"{min(self.status.percent, 100.0):.1f}"


@portal_view
def home(request: HttpRequest) -> HttpResponse:
    """My quotas, approvals waiting for me (in every environment I may act in), my recent
    activity and my recent failures: a fixed number of queries, the same selectors as
    GET /me/quotas, /approvals/ and /audit-events/."""
    actor = portal_actor(request)
    context: dict[str, Any] = {
        "quotas": [QuotaBar(status) for status in quota_selectors.quota_statuses(actor)],
        "may_see_approvals": can(actor, "approval.view").allowed,
        "may_see_audit": can(actor, "audit.view").allowed,
        "may_see_jobs": can(actor, "job.view").allowed,
        "waiting": [],
        "more_waiting": False,
        "activity": [],
        "refusals": [],
        "failed_jobs": [],
        "audit_scope": audit_read_scope(actor),
    }
    if context["may_see_approvals"]:
        # What waits in every environment the person may act in, each row with its own.
        environments = acting_environments(actor)
        rows = list(approval_list(actor=actor, waiting_for_me=True, environments=environments)[: HOME_ROWS + 1])
        context["waiting"], context["more_waiting"] = rows[:HOME_ROWS], len(rows) > HOME_ROWS
    if context["may_see_audit"]:
        mine = audit_events_of_actor(actor=actor)
        context["activity"] = list(mine[:HOME_ACTIVITY_ROWS])
        context["refusals"] = list(mine.filter(outcome__in=[Outcome.DENIED, Outcome.FAILED])[:HOME_ROWS])
    if context["may_see_jobs"]:
        context["failed_jobs"] = jobs.job_list_failed(actor=actor, limit=HOME_ROWS)
    return render(request, "portal/home.html", context)


@require_POST
@portal_view
def environment_switch(request: HttpRequest) -> HttpResponse:
    """Switch the environment every page works in; unknown names are refused with a hint."""
    environment = environment_get(request.POST.get("environment", ""))
    request.session[SESSION_ENVIRONMENT_KEY] = environment.slug
    messages.info(request, f"You are now working in {environment.name}.")
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    # An object page of the old environment would be a 404 in the new one; a link to an
    # object of the new one (e.g. "switch to production and open request 41") says so
    # with `next_in`.
    segments = [part for part in target.split("?")[0].split("/") if part]
    if any(part.isdigit() for part in segments) and request.POST.get("next_in") != environment.slug:
        target = f"/{segments[0]}/"
    return redirect(target)
