"""Reads of access: environments (by slug, and the one a portal session switched to), the
API tokens an actor answers for, and service accounts. Each scopes to the actor's
environment and answers 404 for what the actor may not see, so ids do not leak.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from governance.access.errors import EnvironmentNotFound, ServiceAccountNotFound, TokenNotFound
from governance.models import ApiToken, Environment
from governance.roles import ADMIN

if TYPE_CHECKING:
    from governance.actors import Actor

SESSION_ENVIRONMENT_KEY = "environment"


def environment_get(slug: str) -> Environment:
    try:
        return Environment.objects.get(slug=slug)
    except Environment.DoesNotExist:
        known = ", ".join(Environment.objects.values_list("slug", flat=True))
        raise EnvironmentNotFound(f"There is no environment {slug!r}.", hint=f"Use one of: {known}.") from None


def environment_for_session(request: Any) -> Environment:
    """The environment a signed-in portal user has switched to (default: sandbox)."""
    slug = request.session.get(SESSION_ENVIRONMENT_KEY) or settings.DEFAULT_ENVIRONMENT
    return environment_get(slug)


def token_list(*, actor: Actor) -> QuerySet[ApiToken]:
    """`token.view`: tokens in the actor's environment the actor answers for (their own and
    their service accounts'); admins see all of them."""
    # Imported here: the policy engine imports governance.actors, which imports this module.
    from governance import policy

    policy.require(actor, "token.view")
    tokens = ApiToken.objects.filter(environment=actor.environment).select_related("user", "owner", "environment")
    if ADMIN not in actor.roles and actor.user is not None:
        tokens = tokens.filter(Q(user=actor.user) | Q(owner=actor.user))
    return tokens


def token_get(*, actor: Actor, token_id: int) -> ApiToken:
    try:
        return token_list(actor=actor).get(pk=token_id)
    except ApiToken.DoesNotExist:
        raise TokenNotFound(f"No token {token_id} that you answer for in {actor.environment.slug}.") from None


def service_account_user_get(*, username: str) -> User:
    """The user of the service account `username`, for issuing it a token (token_issue
    decides whether the actor may: its owner or an admin)."""
    user = User.objects.filter(username=username, service_account__isnull=False).first()
    if user is None:
        raise ServiceAccountNotFound(
            f"There is no service account {username!r}.",
            hint="Ask an admin to create it (admin site or `manage.py create_service_account`).",
        )
    return user
