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


def token_list(*, actor: Any) -> Any:
    """Tokens in the actor's environment the actor answers for; admins see all of them."""
    from django.db.models import Q

    from governance import policy
    from governance.models import ApiToken
    from governance.roles import ADMIN

    policy.require(actor, "token.view")
    tokens = ApiToken.objects.filter(environment=actor.environment).select_related("user", "owner")
    if ADMIN not in actor.roles and actor.user is not None:
        tokens = tokens.filter(Q(user=actor.user) | Q(owner=actor.user))
    return tokens


def token_get(*, actor: Any, token_id: int) -> Any:
    from governance.models import ApiToken

    try:
        return token_list(actor=actor).get(pk=token_id)
    except ApiToken.DoesNotExist:
        raise NotFound(f"No token {token_id} that you answer for in {actor.environment.slug}.") from None
