"""The marketer's front door: home, environment switch and the error pages.

Areas live in their own packages (portal/audiences, portal/approvals, portal/audit); every
view calls the same services and selectors as the API.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from governance.selectors import SESSION_ENVIRONMENT_KEY, environment_get
from marketerapi.middleware import current_request_id
from portal.web import portal_actor, portal_view

_TITLES = {
    400: ("Bad request", "Check the address or the form and try again."),
    403: ("You may not open this page", "Ask an admin for the role this page needs."),
    404: ("Page not found", "Check the address, or go back to the home page."),
    500: (
        "Something went wrong on our side",
        "Try again in a minute. If it persists, give the request id below to your platform team.",
    ),
}


def error_page(request: HttpRequest, *, status: int) -> HttpResponse:
    title, hint = _TITLES.get(status, _TITLES[500])
    return render(
        request,
        "portal/error.html",
        {"status": status, "title": title, "hint": hint, "request_id": current_request_id()},
        status=status,
    )


@portal_view
def home(request: HttpRequest) -> HttpResponse:
    actor = portal_actor(request)
    return render(request, "portal/home.html", {"actor": actor})


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
    # An object page of the old environment would be a 404 in the new one.
    segments = [part for part in target.split("?")[0].split("/") if part]
    if any(part.isdigit() for part in segments):
        target = f"/{segments[0]}/"
    return redirect(target)
