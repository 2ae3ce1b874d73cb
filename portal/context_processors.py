"""The layout's context: who is signed in, where, with which roles, and where they can go."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def portal(request: HttpRequest) -> dict[str, Any]:
    """Lazy: pages outside the portal (API, admin) never pay for it."""
    if not request.path.startswith("/") or request.path.startswith(("/api/", "/admin/")):
        return {}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    from governance.models import Environment
    from portal.web import portal_actor

    def environments() -> list[Environment]:
        return list(Environment.objects.order_by("pk"))

    try:
        actor = portal_actor(request)
    except Exception:  # the error pages must render even when the database is what failed
        return {}
    return {"actor": actor, "environments": environments}
