"""What every portal page shares: the actor, what it may do, problems shown in place, and
pages of a list (the API's cursor pagination).

Portal views are thin: they parse a form, call the same service or selector the API calls
and render the answer. Nothing here decides anything — `can()` asks the policy engine so a
page can leave out (or disable, with the reason) what the service would refuse anyway.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.request import Request

from governance import policy
from governance.actors import Actor, actor_from_request
from governance.models import Door
from governance.policy.actions import ACTIONS
from marketerapi.api import CursorPagination, InvalidCursor
from marketerapi.middleware import current_request_id
from marketerapi.problems import ApplicationError

View = Callable[..., HttpResponse]
M = TypeVar("M", bound=Model)


def portal_actor(request: HttpRequest) -> Actor:
    """The signed-in person in the environment they switched to; built once per request."""
    actor = getattr(request, "_portal_actor", None)
    if actor is None:
        actor = actor_from_request(request, door=Door.PORTAL)
        request._portal_actor = actor  # type: ignore[attr-defined]  # cached on the request, once per request
    return actor


@dataclass(frozen=True)
class Permission:
    """Whether the page should offer an action, and if not, why and who can."""

    allowed: bool
    needs_approval: bool = False
    reason: str = ""
    hint: str = ""
    approvals: int = 0
    approver_roles: list[list[str]] = field(default_factory=list)
    # The action's description in the policy ("Publish audiences"): refusals start with it.
    what: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def can(actor: Actor, action: str, target: Any = None, context: dict[str, Any] | None = None) -> Permission:
    """Ask the policy engine without recording anything (the service records the real call)."""
    decision = policy.decide(actor, action, target, context or {})
    if decision.allowed or decision.needs_approval:
        return Permission(
            allowed=True,
            needs_approval=decision.needs_approval,
            reason="; ".join(decision.reasons),
            hint=decision.hint,
            approvals=decision.required_approvals,
            approver_roles=decision.approver_roles,
        )
    return Permission(
        allowed=False, reason="; ".join(decision.reasons), hint=decision.hint, what=ACTIONS[action].description
    )


@dataclass(frozen=True)
class Problem:
    """An `ApplicationError` in the shape templates show: title, detail, hint, field errors."""

    status: int
    code: str
    title: str
    detail: str = ""
    hint: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    request_id: str = ""

    @classmethod
    def of(cls, error: ApplicationError) -> Problem:
        return cls(
            status=error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            hint=error.hint,
            errors=list(error.errors),
            request_id=current_request_id(),
        )

    def errors_at(self, prefix: str) -> list[dict[str, Any]]:
        """The field errors whose JSON pointer starts with `prefix` (e.g. "/rules/all/0")."""
        return [e for e in self.errors if str(e.get("pointer", "")).startswith(prefix)]


def render_problem(
    request: HttpRequest, error: ApplicationError, *, template: str | None = None, status: int | None = None
) -> HttpResponse:
    """A problem shown in place: a fragment for htmx, otherwise a page with the layout."""
    problem = Problem.of(error)
    if template is None:
        template = "portal/_problem.html" if getattr(request, "htmx", False) else "portal/problem.html"
    return render(request, template, {"problem": problem}, status=status or problem.status)


# The policy action of each portal form that changes state (namespace:url name). A refusal
# raised before the service is reached — the read check of the selector that loads the
# object, e.g. for a person without a role — is then recorded as a denied attempt of that
# action, as the API's ActorMixin does: every refused change leaves its audit row.
PORTAL_ACTIONS: dict[str, str] = {
    "portal-audiences:edit": "audience.edit",
    "portal-audiences:delete": "audience.delete",
    "portal-audiences:publish": "audience.publish",
    "portal-audiences:rollback": "audience.rollback",
    "portal-audiences:promote": "audience.promote",
    "portal-audiences:share": "audience.share",
    "portal-audiences:unshare": "audience.share",
    "portal-audiences:copy": "audience.copy",
    "portal-approvals:approve": "approval.vote",
    "portal-approvals:reject": "approval.vote",
    "portal-approvals:cancel": "approval.cancel",
}


def _audit_refused_change(request: HttpRequest, error: ApplicationError) -> None:
    from django.db import transaction

    from governance.audit import trail as audit
    from governance.models import Outcome
    from governance.policy.engine import PolicyDenied

    match = request.resolver_match
    action = PORTAL_ACTIONS.get(match.view_name if match else "")
    if request.method != "POST" or action is None or not isinstance(error, PolicyDenied):
        return
    if getattr(error, "denial", None) is not None:
        return  # policy.require audited it already
    with transaction.atomic():
        audit.record(
            portal_actor(request),
            action,
            outcome=Outcome.DENIED,
            reasons=[error.detail],
            changes={"refused": {"method": "POST", "path": request.path, "rule": error.extra.get("rule", "")}},
        )


def portal_view(view: View) -> View:
    """Signed-in only; a service's refusal becomes its title and hint on the page, not an error page."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if getattr(request, "htmx", False):
                response = HttpResponse(status=401)
                response["HX-Redirect"] = f"/login/?next={request.path}"
                return response
            return redirect_to_login(request.get_full_path())
        try:
            return view(request, *args, **kwargs)
        except ApplicationError as error:
            _audit_refused_change(request, error)
            return render_problem(request, error)
        except Http404 as error:
            return render_problem(
                request,
                ApplicationError(
                    str(error) or "There is nothing at this address in this environment.",
                    status=404,
                    code="not_found",
                    title="Not found",
                    hint="It may belong to another environment: switch environments at the top of the page.",
                ),
            )
        except PermissionDenied as error:
            return render_problem(
                request,
                ApplicationError(
                    str(error),
                    status=403,
                    code="forbidden",
                    title="You may not do this",
                    hint="Ask an admin for the role this needs.",
                ),
            )

    return wrapper


def hx_redirect(request: HttpRequest, url: str) -> HttpResponse:
    """After a successful form post: htmx follows HX-Redirect, a plain form a 303."""
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    response = HttpResponse(status=303)
    response["Location"] = url
    return response


@dataclass(frozen=True)
class Page(Generic[M]):
    """One page of a portal list: its rows, the next page's cursor (None on the last),
    and whether it was reached through a cursor (the page then offers "First page")."""

    rows: list[M]
    next_cursor: str | None
    later: bool


def paginate(
    request: HttpRequest,
    queryset: QuerySet[M],
    *,
    page_size: int,
    paginator: CursorPagination | None = None,
    cursor_hint: str | None = None,
) -> Page[M]:
    """A page of a selector's queryset, with the API's cursor pagination (DRF's, through
    marketerapi.api): a page link that was tampered with is the same 400 `invalid_cursor`
    problem, shown in place (`cursor_hint` says what to do in the page's own words)."""
    pager = paginator if paginator is not None else CursorPagination()
    pager.page_size = page_size
    pager.max_page_size = max(pager.max_page_size or page_size, page_size)
    try:
        rows = pager.paginate_queryset(queryset, Request(request)) or []
    except InvalidCursor as error:
        if cursor_hint is None:
            raise
        raise InvalidCursor(error.detail, hint=cursor_hint) from None
    return Page(rows=rows, next_cursor=pager.get_next_cursor(), later=bool(request.GET.get(pager.cursor_query_param)))
