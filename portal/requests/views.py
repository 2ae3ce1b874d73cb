"""Request history: your own API requests and portal pages in this environment, newest
first — the same selector as GET /api/v1/me/requests (`request_log_list`), paged with the
API's cursor pagination ("Older")."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from governance.requestlog.selectors import request_log_list
from portal.web import paginate, portal_actor, portal_view

PAGE_SIZE = 50
CURSOR_HINT = "Follow the “Older” link as shown, or start again from your newest requests."
DOORS = {"api": "API", "portal": "portal", "admin": "admin site"}


@require_GET
@portal_view
def history(request: HttpRequest) -> HttpResponse:
    actor = portal_actor(request)
    page = paginate(request, request_log_list(actor=actor), page_size=PAGE_SIZE, cursor_hint=CURSOR_HINT)
    base = reverse("portal-requests:history")
    context = {
        "rows": page.rows,
        "doors": DOORS,
        "older_url": f"{base}?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else "",
        "newest_url": base if page.later else "",
    }
    return render(request, "portal/requests/history.html", context)
