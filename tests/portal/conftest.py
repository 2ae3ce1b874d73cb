from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from governance.access.selectors import SESSION_ENVIRONMENT_KEY
from governance.models import Environment


@pytest.fixture
def portal(db, persona, sandbox) -> Callable[..., Client]:
    """portal("operator", pilot) → a signed-in browser session of that persona in that environment."""

    def make(name: str, environment: Environment | None = None) -> Client:
        user = persona(name)
        client = Client()
        client.force_login(user)
        session = client.session
        session[SESSION_ENVIRONMENT_KEY] = (environment or sandbox).slug
        session.save()
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


def htmx(client: Client, method: str, url: str, data: dict | None = None, **extra):
    """A request as htmx sends it (HX-Request header)."""
    return getattr(client, method)(url, data or {}, HTTP_HX_REQUEST="true", **extra)
