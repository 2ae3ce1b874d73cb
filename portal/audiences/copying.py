"""Copy an audience into my team as a draft: the page that asks for the copy's name and
team (GET), and the copy itself (POST) — `audience_copy` in audiences/definitions/services.py,
the service behind POST /api/v1/audiences/{id}/copy and the admin's action.

It is what the policy's refusal on another team's audience offers ("…or copy it into your
team as a draft"), so the audience's page shows **Copy…** to whoever may create audiences.
A refusal (a taken name, a team that is not theirs) is shown on the same form, with its hint.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_http_methods

from audiences.definitions import selectors as audience_selectors
from audiences.definitions import services as audience_services
from audiences.definitions.checks import picks_any_team
from audiences.models import Audience
from governance.access import objectperms
from governance.actors import Actor
from marketerapi.problems import ApplicationError
from portal.audiences.controls import copy_control
from portal.templatetags.rule_words import pointer_words
from portal.web import Problem, hx_redirect, portal_actor, portal_view


def _default_team(actor: Actor, audience: Audience) -> str:
    """The team the form proposes, as the service picks it without one: the person's only
    team; for an admin without exactly one team of their own, the audience's own team."""
    own = objectperms.teams_of(actor.user) if actor.user is not None else []
    if len(own) == 1:
        return own[0].name
    return audience.owner_team.name if picks_any_team(actor) else ""


def _form(
    request: HttpRequest,
    actor: Actor,
    audience: Audience,
    *,
    name: str,
    team: str,
    problem: Problem | None = None,
) -> HttpResponse:
    teams = [group.name for group in audience_selectors.owner_team_choices(actor)]
    context = {
        "audience": audience,
        "control": copy_control(actor, audience),
        "name": name,
        "team": team or _default_team(actor, audience),
        "teams": teams,
        "problem": problem,
        "name_problems": problem.errors_at("/name") if problem else [],
        "team_problems": problem.errors_at("/team") if problem else [],
    }
    return render(request, "portal/audiences/copy.html", context, status=problem.status if problem else 200)


@require_http_methods(["GET", "POST"])
@portal_view
def audience_copy(request: HttpRequest, audience_id: int) -> HttpResponse:
    """GET: the copy's name and team, proposed; POST: make the copy and open it."""
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    if request.method == "GET":
        return _form(request, actor, audience, name=audience_selectors.audience_copy_name(audience), team="")
    name = request.POST.get("name", "").strip()
    team = request.POST.get("team", "").strip()
    try:
        copied = audience_services.audience_copy(actor=actor, audience=audience, team=team or None, name=name or None)
    except ApplicationError as error:
        return _form(request, actor, audience, name=name, team=team, problem=Problem.of(error))
    made = copied.audience
    messages.success(
        request,
        f"Copied “{audience.name}” as the draft “{made.name}”, owned by {made.owner_team.name}: "
        "edit it, validate it and publish it when it is ready.",
    )
    for warning in copied.warnings:
        where = pointer_words(warning.get("pointer"), made.rules)
        messages.warning(request, f"{where}: {warning.get('message', '')} {warning.get('hint', '')}".strip())
    return hx_redirect(request, reverse("portal-audiences:detail", kwargs={"audience_id": made.pk}))


urlpatterns: list[URLPattern] = [
    path("<int:audience_id>/copy/", audience_copy, name="copy"),
]
