"""Reads for governance objects, scoped to the actor."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from governance.models import Environment
from marketerapi.problems import NotFound

SESSION_ENVIRONMENT_KEY = "environment"


def environment_get(slug: str) -> Environment:
    try:
        return Environment.objects.get(slug=slug)
    except Environment.DoesNotExist:
        known = ", ".join(Environment.objects.values_list("slug", flat=True))
        raise NotFound(
            f"There is no environment {slug!r}.", hint=f"Use one of: {known}.", code="environment_not_found"
        ) from None


def environment_for_session(request: Any) -> Environment:
    """The environment a signed-in portal user has switched to (default: sandbox)."""
    slug = request.session.get(SESSION_ENVIRONMENT_KEY) or settings.DEFAULT_ENVIRONMENT
    return environment_get(slug)
