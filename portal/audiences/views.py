"""Audience pages: the list, one audience, publish with live job progress, versions and
rollback, members, promote, share, delete (the rule editor is editor.py).

Thin like every door: each view reads through the selectors the API reads through —
`audience_list` (with the list's filters) and `audience_get` (404 for another environment's)
in audiences/definitions/selectors.py, `version_list` and `members_as_seen` in
audiences/publishing/selectors.py, `jobs.job_get` + `job_as_public`, `audit_event_list` —
calls the service the API calls (`audience_publish` / `audience_rollback`,
`audience_share` / `_unshare` / `_promote` / `_delete`, each an `ActionOutcome` where
approval may be asked) with the portal actor, and renders the answer. Lists page with the
API's cursor pagination (`portal.web.paginate`; members with the version-bound
audiences/publishing/pagination.py). What a person may not do is shown disabled with the
reason and who can (`can()`); a forged POST is refused by the service itself, which audits
the refusal. A service's problem is shown in place (portal.web.portal_view).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.request import Request

from audiences.definitions import selectors as audience_selectors
from audiences.definitions import services as audience_services
from audiences.models import Audience, AudienceState, AudienceVersion, Channel, Profile, VersionState
from audiences.publishing import selectors as publish_selectors
from audiences.publishing import services as publish
from audiences.publishing.build import rebuild_warning
from audiences.publishing.errors import VersionNotFound
from audiences.publishing.pagination import MembershipPagination, VersionPagination
from audiences.rules import rule_references
from governance.actors import Actor
from governance.approvals import ActionOutcome, approval_brief
from governance.approvals.selectors import approval_list, received_of, request_steps
from governance.approvals.steps import describe_steps
from governance.audit.selectors import audit_event_list
from governance.models import ApprovalRequest
from integrations.jobs import selectors as jobs
from integrations.models import JobState
from marketerapi.problems import ApplicationError, InvalidInput
from portal.audiences.controls import (
    Control,
    action_bar,
    copy_control,
    delete_control,
    edit_control,
    is_deleted_not_archived,
    publish_control,
    rollback_control,
)
from portal.audiences.editor import OPERATOR_LABELS, STEP_LABELS
from portal.templatetags.portal_words import event_words
from portal.web import Page, Problem, can, hx_redirect, paginate, portal_actor, portal_view

PAGE_SIZE = 50
MEMBERS_PAGE = 50
HISTORY_SIZE = 10
FILTERS = ("team", "state", "channel", "q")
AUDIENCE_TYPE = Audience._meta.label_lower


# --- small helpers --------------------------------------------------------------------------


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _url(name: str, **kwargs: Any) -> str:
    return reverse(f"portal-audiences:{name}", kwargs=kwargs)


def approval_url(approval_id: int | None = None) -> str:
    """The approvals page of a request (another area of the portal), or the inbox."""
    if approval_id is not None:
        try:
            return reverse("portal-approvals:detail", kwargs={"approval_id": approval_id})
        except NoReverseMatch:
            pass
    return reverse("portal-approvals:inbox")


def _plural(count: int | None, word: str, plural: str | None = None) -> str:
    count = count or 0
    return f"{count:,} {word if count == 1 else (plural or word + 's')}"


def n(value: int | None) -> str:
    """A count as pages show it: 1,204 (a dash when unknown)."""
    return "—" if value is None else f"{value:,}"


def _field_error(pointer: str, message: str, hint: str, code: str = "invalid") -> InvalidInput:
    return InvalidInput(
        message, hint=hint, errors=[{"pointer": pointer, "code": code, "message": message, "hint": hint}]
    )


# --- reading the rules ---------------------------------------------------------------------------


def _attr_label(name: str) -> str:
    if name.startswith("attributes."):
        return f"{name.removeprefix('attributes.')} (custom attribute)"
    if name == "email_domain":
        return "Email domain"
    try:
        return str(getattr(Profile._meta.get_field(name), "verbose_name", name)).capitalize()
    except Exception:
        return name


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_value_text(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _condition_text(node: dict[str, Any], names: dict[int, str]) -> str:
    if "attr" in node:
        op = str(node.get("op", ""))
        label = _attr_label(str(node.get("attr", "")))
        words = OPERATOR_LABELS.get(op, op)
        if op == "is_null":
            return f"{label} is {'empty' if node.get('value', True) is not False else 'not empty'}"
        if op == "within_days":
            return f"{label} is within the last {_value_text(node.get('value'))} days"
        if op == "between" and isinstance(node.get("value"), list) and len(node["value"]) == 2:
            low, high = node["value"]
            return f"{label} is between {_value_text(low)} and {_value_text(high)}"
        return f"{label} {words} {_value_text(node.get('value'))}"
    if "consent" in node:
        granted = node.get("is", True) is not False
        return f"{'has' if granted else 'has not'} given {node.get('consent')} consent"
    if "event" in node:
        count = node.get("min_count", 1)
        text = f"did “{node.get('event')}” at least {_plural(count, 'time')}"
        if node.get("within_days") is not None:
            text += f" in the last {_plural(node.get('within_days'), 'day')}"
        where = node.get("where") or []
        if isinstance(where, list) and where:
            parts = [
                f"{item.get('property')} {OPERATOR_LABELS.get(item.get('op', ''), item.get('op', ''))} "
                f"{_value_text(item.get('value'))}"
                for item in where
                if isinstance(item, dict)
            ]
            text += f", where {' and '.join(parts)}"
        return text
    if "in_audience" in node:
        ref = node.get("in_audience")
        name = names.get(ref) if isinstance(ref, int) else None
        return f"is a member of “{name}” (audience {ref})" if name else f"is a member of audience {ref}"
    return "an unknown condition"


def rules_tree(node: Any, names: dict[int, str]) -> dict[str, Any]:
    """The rules as nested plain sentences: {"text", "children"} for the page to list."""
    if not isinstance(node, dict):
        return {"text": "not a rule", "children": []}
    for key, words in (("all", "All of these hold:"), ("any", "At least one of these holds:")):
        if key in node and isinstance(node[key], list):
            if not node[key]:
                return {"text": "Everyone (no conditions yet)" if key == "all" else "Nobody (no conditions)"}
            return {"text": words, "children": [rules_tree(child, names) for child in node[key]]}
    if "not" in node:
        inner = node["not"]
        if isinstance(inner, dict) and not ({"all", "any", "not"} & set(inner)):
            return {"text": f"Not: {_condition_text(inner, names)}", "children": []}
        return {"text": "None of this holds:", "children": [rules_tree(inner, names)]}
    return {"text": _condition_text(node, names), "children": []}


def _referenced_names(actor: Actor, rules: Any) -> dict[int, str]:
    ids = {ref for _, ref in rule_references(rules)}
    if not ids:
        return {}
    return dict(audience_selectors.audience_list(actor=actor).filter(pk__in=ids).values_list("pk", "name"))


# --- the audit history -------------------------------------------------------------------------------
# In the same plain words as the audit timeline (portal/templatetags/portal_words.py).


def audience_history(actor: Actor, audience_id: int) -> tuple[list[dict[str, Any]], bool]:
    """The latest audit events of one audience the actor may read (the same selector as the
    audit API: approvers, compliance reviewers and admins read everyone's, others their own)."""
    if not can(actor, "audit.view"):
        return [], False
    events = audit_event_list(actor=actor, params={"target": f"{AUDIENCE_TYPE}:{audience_id}"})[:HISTORY_SIZE]
    return [{"event": event, "words": event_words(event)} for event in events], True


def timeline_url(audience_id: int) -> str:
    try:
        return reverse("portal-audit:timeline") + f"?target={AUDIENCE_TYPE}:{audience_id}"
    except NoReverseMatch:
        return ""


# --- 1. the list ---------------------------------------------------------------------------------


@require_GET
@portal_view
def audience_list(request: HttpRequest) -> HttpResponse:
    """The environment's audiences, newest first, filtered like GET /api/v1/audiences/."""
    actor = portal_actor(request)
    values = {name: request.GET.get(name, "").strip() for name in FILTERS}
    problem = None
    page: Page[Audience] = Page(rows=[], next_cursor=None, later=False)
    try:
        page = paginate(request, audience_selectors.audience_list(actor=actor, filters=values), page_size=PAGE_SIZE)
    except InvalidInput as error:
        problem = Problem.of(error)  # shown beside the filters, which stay on the page to fix it
    for row in page.rows:
        # What the list shows in the reach column, set on the row for the template.
        row.reach = n(row.live_version.members if row.live_version is not None else None)  # type: ignore[attr-defined]
    query = {k: v for k, v in values.items() if v}
    context = {
        "audiences": page.rows,
        "filters": values,
        "filtered": bool(query),
        "query": urlencode(query),
        "next_cursor": page.next_cursor,
        "first_page": page.later,
        "problem": problem,
        "teams": list(audience_selectors.teams().order_by("name").values_list("name", flat=True)),
        "states": AudienceState.choices,
        "channels": Channel.choices,
        "create": Control.of(can(actor, "audience.create")),
    }
    return render(request, "portal/audiences/list.html", context, status=problem.status if problem else 200)


def version_view(version: AudienceVersion | None, live_id: int | None) -> dict[str, Any] | None:
    """A version with its counts as the pages show them."""
    if version is None:
        return None
    channel = version.channel
    return {
        "version": version,
        "number": version.number,
        "is_live": version.pk == live_id,
        "members": n(version.members),
        "matching": n(version.matching),
        "added": n(version.added),
        "removed": n(version.removed),
        "waterfall": [
            {
                "label": _step_label(str(step.get("step")), channel),
                "remaining": n(step.get("remaining")),
                "removed": _removed_text(step.get("removed")),
            }
            for step in (version.waterfall or [])
            if isinstance(step, dict)
        ],
    }


def _step_label(step: str, channel: str) -> str:
    """A waterfall step as the preview names it; a rollback's own steps ("members of
    version 1") with a capital."""
    label = STEP_LABELS.get(step, step).format(channel=channel)
    return label[:1].upper() + label[1:]


def _removed_text(removed: Any) -> str:
    """What a waterfall step removed: "−56", "0" when it removed nobody (never blank), "—" unknown."""
    if not isinstance(removed, int):
        return "—"
    return f"−{removed:,}" if removed else "0"


# --- 2. one audience -------------------------------------------------------------------------------


def _pending_requests(actor: Actor, audience: Audience) -> list[dict[str, Any]]:
    """Open approval requests about this audience (two queries: the requests, their votes)."""
    if not can(actor, "approval.view"):
        return []
    requests = approval_list(actor=actor, state="pending").filter(target_type=AUDIENCE_TYPE, target_id=str(audience.pk))
    return [_approval_view(request, received_of(request)) for request in requests]


def _approval_view(request: ApprovalRequest, received: int = 0) -> dict[str, Any]:
    brief = approval_brief(request, received)
    wanted = request_steps(request)
    runs_when = f"{describe_steps(wanted)} {'approves' if len(wanted) == 1 else 'approve'} it"
    return {**brief, "request": request, "url": approval_url(request.pk), "runs_when": runs_when}


# The parts of an audience's page that a publish or rollback changes: the heading with its
# state badge, the action bar, whether the rules are live, the live version and the history.
# When its job ends, the job panel sends them again out of band (htmx), so the page never
# shows a draft badge beside "Version 1 is live".
DETAIL_PARTS = (
    "portal/audiences/_heading.html",
    "portal/audiences/_action_bar.html",
    "portal/audiences/_rules_state.html",
    "portal/audiences/_live_version.html",
    "portal/audiences/_history.html",
)
REFRESH_DETAIL = "detail"


def detail_parts(actor: Actor, audience: Audience) -> dict[str, Any]:
    """What the changing parts of an audience's page show (DETAIL_PARTS). The action bar
    says each reason once for the buttons it disables (`reasons`)."""
    history, history_visible = audience_history(actor, audience.pk)
    copy = copy_control(actor, audience)
    delete_label = "Delete" if is_deleted_not_archived(audience) else "Archive"
    bar, reasons = action_bar(
        "actions",
        [
            ("edit", "Edit", edit_control(actor, audience, copyable=copy.allowed)),
            ("publish", "Publish", publish_control(actor, audience, copyable=copy.allowed)),
            ("delete", delete_label, delete_control(actor, audience, copyable=copy.allowed)),
            ("copy", "Copy", copy),
        ],
    )
    return {
        "audience": audience,
        "live": version_view(audience.live_version, audience.live_version_id),
        "controls": {
            **bar,
            "promote": Control.of(can(actor, "audience.promote", audience)),
            "share": Control.of(can(actor, "audience.share", audience)),
        },
        "reasons": reasons,
        "delete_label": delete_label,
        "history": history,
        "history_visible": history_visible,
        "timeline_url": timeline_url(audience.pk),
    }


@require_GET
@portal_view
def audience_detail(request: HttpRequest, audience_id: int) -> HttpResponse:
    """Metadata, the rules in words, the live version, what the person may do, history."""
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    context = {
        **detail_parts(actor, audience),
        "rules_tree": rules_tree(audience.rules, _referenced_names(actor, audience.rules)),
        "rules_json": json.dumps(audience.rules, indent=2, ensure_ascii=False),
        "shares": audience_selectors.audience_shares(audience),
        "share_teams": _share_teams(audience),
        "pending": _pending_requests(actor, audience),
    }
    return render(request, "portal/audiences/detail.html", context)


def _share_teams(audience: Audience) -> list[str]:
    return list(
        audience_selectors.teams().exclude(pk=audience.owner_team_id).order_by("name").values_list("name", flat=True)
    )


# --- 3. publish and its job ------------------------------------------------------------------------


def _approval_response(
    request: HttpRequest, audience: Audience, approval: ApprovalRequest, *, what: str, warnings: Any = ()
) -> HttpResponse:
    context = {"audience": audience, "approval": _approval_view(approval), "what": what, "warnings": list(warnings)}
    template = "portal/audiences/_approval_notice.html" if _is_htmx(request) else "portal/audiences/approval_filed.html"
    return render(request, template, context, status=202)


def _job_started(
    request: HttpRequest, audience: Audience, outcome: ActionOutcome[publish.VersionBuild], *, what: str
) -> HttpResponse:
    """A publish or rollback job started: the live progress panel (htmx) or its page."""
    assert outcome.result is not None
    job = outcome.result.job
    warnings = list(outcome.warnings)
    quota = outcome.result.quota.warning() if outcome.result.quota is not None else None
    if not _is_htmx(request):
        for warning in warnings:
            messages.warning(request, f"{warning['message']} {warning.get('hint', '')}".strip())
        if quota:
            messages.warning(request, f"Publish quota: {quota['message']}")
        return hx_redirect(request, _url("job", job_id=job.pk))
    context = _job_context(job, audience)
    context.update({"started": what, "start_warnings": warnings, "quota_warning": quota})
    _refresh_parts(request, context, request.POST.get("refresh", ""))
    return render(request, "portal/audiences/_job.html", context, status=202)


def _refresh_parts(request: HttpRequest, context: dict[str, Any], refresh: str) -> None:
    """On the audience's page (`refresh=detail`), the job panel keeps polling with the same
    flag and, once the job has ended, carries the page's changed parts out of band."""
    audience = context.get("audience")
    if refresh != REFRESH_DETAIL or audience is None:
        return
    context["refresh"] = REFRESH_DETAIL
    if context["terminal"]:
        context["parts"] = DETAIL_PARTS
        context.update(detail_parts(portal_actor(request), audience))


@require_POST
@portal_view
def audience_publish(request: HttpRequest, audience_id: int) -> HttpResponse:
    """Publish the current definition: a job (live progress) or an approval request."""
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    outcome = publish.audience_publish(actor=actor, audience=audience)
    if outcome.approval is not None:
        return _approval_response(request, audience, outcome.approval, what="publish", warnings=outcome.warnings)
    return _job_started(request, audience, outcome, what="publish")


def _job_context(job: Any, audience: Audience | None) -> dict[str, Any]:
    shown = jobs.job_as_public(job)
    result = shown["result"]
    counts = result.get("counts") or {}
    version = result.get("version") or {}
    if counts:
        counts = {**counts, **{f"{key}_text": n(counts.get(key)) for key in ("members", "added", "removed")}}
    return {
        "job": shown,
        "state_label": dict(JobState.choices).get(job.state, job.state),
        "audience": audience,
        "terminal": job.state in jobs.TERMINAL,
        "percent": (shown["progress"] or {}).get("percent", 0),
        "phase": (shown["progress"] or {}).get("phase", ""),
        "version": version,
        "counts": counts,
        "label": {"audience.publish": "Publishing", "audience.rollback": "Rolling back"}.get(
            job.kind, job.kind.replace(".", " ").replace("_", " ").capitalize()
        ),
    }


@require_GET
@portal_view
def job_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    """A job's state, progress, queue position, warnings and errors (GET /api/v1/jobs/{id}):
    a fragment polled every second by htmx until the job ends, or a page."""
    actor = portal_actor(request)
    job = jobs.job_get(actor=actor, job_id=job_id)
    audience = None
    if job.target_type == AUDIENCE_TYPE and job.target_id.isdigit():
        try:
            audience = audience_selectors.audience_get(actor=actor, audience_id=int(job.target_id))
        except ApplicationError:
            audience = None  # a deleted draft: the job still tells its story
    context = _job_context(job, audience)
    if _is_htmx(request):
        _refresh_parts(request, context, request.GET.get("refresh", ""))
        return render(request, "portal/audiences/_job.html", context)
    return render(request, "portal/audiences/job.html", context)


# --- 4. versions and rollback ------------------------------------------------------------------------


@require_GET
@portal_view
def audience_versions(request: HttpRequest, audience_id: int) -> HttpResponse:
    """Every version, newest first: counts, diff sizes, who and when, which is live."""
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    page = paginate(
        request,
        publish_selectors.version_list(actor=actor, audience=audience),
        page_size=PAGE_SIZE,
        paginator=VersionPagination(),
    )
    context = {
        "audience": audience,
        "versions": [version_view(version, audience.live_version_id) for version in page.rows],
        "rollback": rollback_control(actor, audience),
        "next_cursor": page.next_cursor,
        "first_page": page.later,
        "keep": settings.AUDIENCE_VERSIONS_WITH_MEMBERS,
    }
    return render(request, "portal/audiences/versions.html", context)


def _version_number(raw: str) -> int:
    raw = (raw or "").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise _field_error(
            "/version",
            f"{raw!r} is not a version number." if raw else "Choose the version to make live again.",
            "Pick a version on the versions page: its number is in the first column.",
        )
    return int(raw)


@require_http_methods(["GET", "POST"])
@portal_view
def audience_rollback(request: HttpRequest, audience_id: int) -> HttpResponse:
    """GET: what rolling back to version n does (the confirmation); POST: do it."""
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    if request.method == "POST":
        number = _version_number(request.POST.get("version", ""))
        outcome = publish.audience_rollback(actor=actor, audience=audience, version=number)
        if outcome.approval is not None:
            return _approval_response(request, audience, outcome.approval, what="roll back", warnings=outcome.warnings)
        return _job_started(request, audience, outcome, what=f"roll back to version {number}")
    number = _version_number(request.GET.get("version", ""))
    target = publish_selectors.version_list(actor=actor, audience=audience).filter(number=number).first()
    if target is None:
        raise VersionNotFound(
            f"“{audience.name}” has no version {number}.", hint="The versions page lists its versions."
        )
    context = {
        "audience": audience,
        "target": target,
        "target_members": n(target.members),
        "live": version_view(audience.live_version, audience.live_version_id),
        "rollback": rollback_control(actor, audience),
        "refusal": _rollback_refusal(audience, target),
        "rebuild_warning": rebuild_warning(target)["message"] if not target.members_retained else "",
    }
    return render(request, "portal/audiences/rollback_confirm.html", context)


def _rollback_refusal(audience: Audience, target: AudienceVersion) -> str:
    """Why the service would refuse (shown before asking; the service decides anyway)."""
    if target.state != VersionState.READY:
        return f"Version {target.number} is {target.state}; it never went live, so it cannot be rolled back to."
    if target.pk == audience.live_version_id:
        return f"Version {target.number} is the live version already."
    return ""


# --- 5. members --------------------------------------------------------------------------------------


@require_GET
@portal_view
def audience_members(request: HttpRequest, audience_id: int) -> HttpResponse:
    """The live version's members, a page at a time, masked as the API masks them."""
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    paginator = MembershipPagination()
    paginator.page_size = MEMBERS_PAGE
    page = paginator.members_page(actor=actor, audience=audience, request=Request(request))
    rows, masked = publish_selectors.members_as_seen(actor=actor, members=page.members)
    context = {
        "audience": audience,
        "version": page.version,
        "members_text": n(page.version.members) if page.version is not None else "0",
        "is_live": page.version is not None and page.version.pk == audience.live_version_id,
        "rows": rows,
        "pii_masked": masked,
        "next_cursor": page.next_cursor,
        "first_page": bool(request.GET.get("cursor")),
    }
    return render(request, "portal/audiences/members.html", context)


# --- 6. promote ------------------------------------------------------------------------------------


@require_POST
@portal_view
def audience_promote(request: HttpRequest, audience_id: int) -> HttpResponse:
    """Copy the definition into another environment as a draft there."""
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    environment = request.POST.get("environment", "").strip()
    name = request.POST.get("name", "").strip() or None
    promotion = audience_services.audience_promote(actor=actor, audience=audience, environment=environment, name=name)
    copy = promotion.audience
    context = {
        "audience": audience,
        "copy": copy,
        "unmapped": promotion.unmapped,
        "warnings": promotion.warnings,
        "open_next": reverse("portal-audiences:list") + "?" + urlencode({"q": copy.name}),
    }
    template = "portal/audiences/_promoted.html" if _is_htmx(request) else "portal/audiences/promoted.html"
    return render(request, template, context, status=201)


# --- 7. share ------------------------------------------------------------------------------------------


def _grantee(request: HttpRequest) -> dict[str, str | None]:
    team = request.POST.get("team", "").strip() or None
    user = request.POST.get("user", "").strip() or None
    return {"team": team, "user": user}


def _shares_response(
    request: HttpRequest, actor: Actor, audience: Audience, *, done: str = "", problem: Problem | None = None
) -> HttpResponse:
    if not _is_htmx(request):
        if done:
            messages.success(request, done)
        return hx_redirect(request, _url("detail", audience_id=audience.pk) + "#shares")
    context = {
        "audience": audience,
        "shares": audience_selectors.audience_shares(audience),
        "controls": {"share": Control.of(can(actor, "audience.share", audience))},
        "share_teams": _share_teams(audience),
        "done": done,
        "problem": problem,
    }
    return render(request, "portal/audiences/_shares.html", context, status=problem.status if problem else 200)


def _share_action(request: HttpRequest, audience_id: int, *, unshare: bool) -> HttpResponse:
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    grantee = _grantee(request)
    who = f"the team {grantee['team']}" if grantee["team"] else str(grantee["user"])
    try:
        if unshare:
            audience_services.audience_unshare(actor=actor, audience=audience, **grantee)
            done = f"“{audience.name}” is no longer shared with {who}."
        else:
            level = request.POST.get("level", "").strip()
            audience_services.audience_share(actor=actor, audience=audience, level=level, **grantee)
            done = f"“{audience.name}” is shared with {who} ({level})."
    except ApplicationError as error:
        if not _is_htmx(request):
            raise
        return _shares_response(request, actor, audience, problem=Problem.of(error))
    return _shares_response(request, actor, audience, done=done)


@require_POST
@portal_view
def audience_share(request: HttpRequest, audience_id: int) -> HttpResponse:
    """Share with a team or a person, at view or change (sharing again replaces the level)."""
    return _share_action(request, audience_id, unshare=False)


@require_POST
@portal_view
def audience_unshare(request: HttpRequest, audience_id: int) -> HttpResponse:
    """Take a share back."""
    return _share_action(request, audience_id, unshare=True)


# --- 8. delete or archive ----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@portal_view
def audience_delete(request: HttpRequest, audience_id: int) -> HttpResponse:
    """GET: what deleting does (a draft is deleted, a published audience archived, maybe
    after approvals); POST: do it."""
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    if request.method == "GET":
        context = {"audience": audience, "control": delete_control(actor, audience)}
        return render(request, "portal/audiences/delete_confirm.html", context)
    deletion = audience_services.audience_delete(actor=actor, audience=audience)
    if deletion.approval is not None:
        return _approval_response(request, audience, deletion.approval, what="archive")
    if deletion.result is None:
        messages.success(request, f"Deleted the draft “{audience.name}”.")
        return hx_redirect(request, _url("list"))
    messages.success(request, f"Archived “{audience.name}”: it is kept for the record and its members stop syncing.")
    return hx_redirect(request, _url("detail", audience_id=audience.pk))


urlpatterns: list[URLPattern] = [
    path("", audience_list, name="list"),
    path("<int:audience_id>/", audience_detail, name="detail"),
    path("<int:audience_id>/publish/", audience_publish, name="publish"),
    path("jobs/<int:job_id>/", job_progress, name="job"),
    path("<int:audience_id>/versions/", audience_versions, name="versions"),
    path("<int:audience_id>/rollback/", audience_rollback, name="rollback"),
    path("<int:audience_id>/members/", audience_members, name="members"),
    path("<int:audience_id>/promote/", audience_promote, name="promote"),
    path("<int:audience_id>/share/", audience_share, name="share"),
    path("<int:audience_id>/unshare/", audience_unshare, name="unshare"),
    path("<int:audience_id>/delete/", audience_delete, name="delete"),
]
