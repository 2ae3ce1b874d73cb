"""The marketer's front door. This first version signs people in and shows where they are;
the audience workflow pages arrive with the portal issue."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from governance.actors import actor_from_request
from governance.models import Door
from marketerapi.middleware import current_request_id

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


@login_required
def home(request: HttpRequest) -> HttpResponse:
    actor = actor_from_request(request, door=Door.PORTAL)
    return render(request, "portal/home.html", {"actor": actor})
