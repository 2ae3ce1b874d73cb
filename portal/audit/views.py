"""The audit timeline: who did what, when, through which door, with what outcome.

The same selector as GET /api/v1/audit-events/ (`audit_event_list`): the same filters,
parsed by `audit_filters_parse` (a bad value shows each parameter's hint beside its
field), and the same read scope (own actions, or everyone's for approvers, compliance
reviewers and admins). Pages go back in time with the API's cursor pagination ("Older").

`?target=audiences.audience:42` is one object's history; with `HX-Request` the view
answers the list alone, so other pages can embed it (`hx-get="/audit/?target=…"
hx-trigger="load"`), optionally with `limit` (1–100).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from governance import policy
from governance.audit.selectors import (
    DATETIME_HINT,
    FILTER_PARAMETERS,
    SCOPE_ALL,
    audit_event_list,
    audit_read_scope,
)
from governance.models import AuditEvent, Outcome
from governance.roles import AUDIT_READ_ALL_ROLES
from marketerapi.problems import ApplicationError
from portal.templatetags.portal_words import PHRASES, as_json, event_words, object_url, outcome_words
from portal.web import Problem, paginate, portal_actor, portal_view

PAGE_SIZE = 50
# "through the API": how each door reads in a sentence.
DOORS = {
    "api": "the API",
    "portal": "the portal",
    "admin": "the admin site",
    "task": "a background task",
    "cli": "the command line",
}
MAX_LIMIT = 100
PAGE_PARAMETERS = ("cursor", "limit")
CURSOR_HINT = "Follow the “Older” link as shown, or start again from the newest events."
# Suggestions for the action field: the actions services record (any other name works too).
ACTIONS = sorted(
    {*PHRASES, "audience.published", "audience.rolled_back", "approval.execute", "approval.expire", "audience.*"}
)


class InvalidLimit(ApplicationError):
    status = 422
    code = "invalid_filter"
    title = "Some filter values are not valid"
    hint = f"`limit` is a whole number from 1 to {MAX_LIMIT}."


def _limit(raw: str) -> int:
    if not raw:
        return PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidLimit(
            f"limit must be a whole number from 1 to {MAX_LIMIT}; got {raw!r}.",
            errors=[
                {
                    "parameter": "limit",
                    "pointer": "",
                    "code": "invalid",
                    "message": "Not a whole number from 1 to 100.",
                    "hint": "e.g. 20",
                }
            ],
        )
    return int(raw)


@dataclass(frozen=True)
class Entry:
    """One event as the timeline shows it, prepared here so that a page of 50 renders fast."""

    event: AuditEvent
    words: str
    outcome: str
    iso: str
    when: str
    door: str
    history_url: str
    page_url: str
    details: list[tuple[str, str]]
    approvals: list[tuple[str, str]]
    changes: str


def _entry(event: AuditEvent, base: str) -> Entry:
    target = f"{event.target_type}:{event.target_id or '*'}" if event.target_type else ""
    details = [("Request id", event.request_id or "—"), ("Action", event.action)]
    if target:
        details.append(("Object", f"{target} {event.target_label}".strip()))
    token_prefix = getattr(event, "token_prefix", None)
    if token_prefix:
        details.append(("Token", f"{token_prefix}…"))
    if event.ip:
        details.append(("IP address", str(event.ip)))
    reasons = event.reasons if isinstance(event.reasons, list) else [event.reasons]
    if any(reasons):
        details.append(("Reasons", " ".join(str(r) for r in reasons if r)))
    approvals = []
    for ref in event.approval_refs or []:
        if isinstance(ref, dict) and ref.get("approval_request") is not None:
            who = f" ({ref['voter']}{', ' + ref['role'] if ref.get('role') else ''})" if ref.get("voter") else ""
            number = ref["approval_request"]
            url = object_url("governance.approvalrequest", number)
            approvals.append((url, f"request {number}{who}"))
    moment = event.occurred_at.astimezone(UTC)
    return Entry(
        event=event,
        words=event_words(event),
        outcome=outcome_words(event.outcome),
        iso=moment.isoformat(),
        when=f"{moment:%Y-%m-%d %H:%M:%S} UTC",
        door=DOORS.get(event.door, event.door),
        history_url=f"{base}?{urlencode({'target': target})}" if target else "",
        page_url=object_url(event.target_type, event.target_id),
        details=details,
        approvals=approvals,
        changes=as_json(event.changes) if event.changes else "",
    )


@dataclass
class Timeline:
    events: list[Entry] = field(default_factory=list)
    older: str = ""
    problem: Problem | None = None
    field_errors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _query(params: QueryDict, **changes: str) -> str:
    """The current filters with some values changed (e.g. the next cursor)."""
    query = params.copy()
    for name, value in changes.items():
        if value:
            query[name] = value
        else:
            query.pop(name, None)
    return query.urlencode()


def _timeline(request: HttpRequest) -> Timeline:
    actor = portal_actor(request)
    # Empty fields of the filter form are no filter: the selector reads "" as unset.
    params = request.GET
    out = Timeline()
    try:
        events = audit_event_list(actor=actor, params=params, extra_parameters=PAGE_PARAMETERS)
        page = paginate(request, events, page_size=_limit(params.get("limit", "")), cursor_hint=CURSOR_HINT)
    except ApplicationError as error:
        if isinstance(error, policy.PolicyDenied):
            raise
        problem = Problem.of(error)
        for entry in error.errors:
            name = entry.get("parameter") or ""
            out.field_errors.setdefault(name, []).append(entry)
        if not getattr(request, "htmx", False):
            # The full page shows each filter's message and hint beside its field.
            elsewhere = [e for e in problem.errors if e.get("parameter") not in FILTER_PARAMETERS]
            hint = "Fix the filters marked above; each says how." if problem.errors != elsewhere else problem.hint
            problem = replace(problem, errors=elsewhere, hint=hint)
        out.problem = problem
        return out
    base = reverse("portal-audit:timeline")
    out.events = [_entry(event, base) for event in page.rows]
    if page.next_cursor:
        out.older = _query(params, cursor=page.next_cursor)
    return out


@require_GET
@portal_view
def timeline(request: HttpRequest) -> HttpResponse:
    actor = portal_actor(request)
    result = _timeline(request)
    scope = audit_read_scope(actor)
    values = {name: request.GET.get(name, "") for name in FILTER_PARAMETERS}
    context = {
        "timeline": result,
        "values": values,
        "filtered": any(values.values()),
        "scope": scope,
        "scope_all": scope == SCOPE_ALL,
        "scope_roles": [role.replace("_", " ") + "s" for role in actor.roles if role in AUDIT_READ_ALL_ROLES],
        "outcomes": Outcome.choices,
        "actions": ACTIONS,
        "datetime_hint": DATETIME_HINT,
        "errors": result.field_errors,
        "timeline_url": reverse("portal-audit:timeline"),
        "newest_url": reverse("portal-audit:timeline") + "?" + _query(request.GET, cursor=""),
    }
    status = result.problem.status if result.problem is not None else 200
    if getattr(request, "htmx", False):
        return render(request, "portal/audit/_list.html", context, status=status)
    return render(request, "portal/audit/timeline.html", context, status=status)
