"""The actor: who acts, possibly through a token, through which door, from where."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from rest_framework.exceptions import NotAuthenticated

from governance import permcache
from governance.access.selectors import environment_for_session
from governance.audit.trail import normalized_ip
from governance.models import ApiToken, Door, Environment
from marketerapi import logs

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class Actor:
    user: User | None
    environment: Environment
    door: str = Door.API
    token: ApiToken | None = None
    ip: str | None = None
    request_id: str = ""
    # Roles are looked up once per actor; the policy engine and hints use them.
    _roles: list[str] | None = field(default=None, compare=False, repr=False)

    @property
    def is_system(self) -> bool:
        """An operator at a shell or a scheduled task with no person behind it."""
        return self.user is None

    @property
    def label(self) -> str:
        if self.user is None:
            return f"system ({self.door})"
        return str(self.user.get_username())

    @property
    def roles(self) -> list[str]:
        if self._roles is not None:
            return self._roles
        from governance.roles import ROLE_NAMES

        if self.user is None:
            roles: list[str] = []
        else:
            cached: list[str] | None = getattr(self.user, "_marketerapi_roles", None)
            if cached is None:
                cached = sorted(name for name in self.user.groups.values_list("name", flat=True) if name in ROLE_NAMES)
                # Cached on the user object: the actor of the next request of the same user
                # object (a test, the portal's session user) asks again; permcache drops it.
                self.user._marketerapi_roles = cached  # type: ignore[attr-defined]
            roles = cached
        object.__setattr__(self, "_roles", roles)
        return roles

    def with_door(self, door: str) -> Actor:
        return Actor(self.user, self.environment, door, self.token, self.ip, self.request_id)

    @classmethod
    def system(cls, environment: Environment, door: str = Door.CLI, request_id: str = "") -> Actor:
        return cls(user=None, environment=environment, door=door, request_id=request_id)


def client_ip(request: Any) -> str | None:
    """The client's address, in the one spelling PostgreSQL gives back (the audit chain
    hashes it; the rate limiter counts by it), or None.

    X-Forwarded-For is written by whoever sends the request, so only the entries added by
    our own proxies can be believed: with TRUSTED_PROXIES = N (the proxies in front of the
    app), the client is the N-th entry from the right, the one the outermost proxy added.
    With 0 (no proxy), the header is ignored and REMOTE_ADDR is the client. A chain shorter
    than N (a request that did not come through every proxy) or an entry that is not an
    address falls back to REMOTE_ADDR.
    """
    trusted = settings.TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "") if trusted else ""
    if forwarded:
        entries = [entry.strip() for entry in forwarded.split(",")]
        if len(entries) >= trusted:
            address = normalized_ip(entries[-trusted])
            if address:
                return address
    return normalized_ip(request.META.get("REMOTE_ADDR"))


def actor_from_request(request: Any, door: str = Door.API) -> Actor:
    """Build the actor of an authenticated request (token or session)."""
    if not request.user.is_authenticated:
        # A request with no person behind it must never become a system actor.
        raise NotAuthenticated()
    permcache.prime(request.user)
    token = getattr(request, "auth", None)
    if isinstance(token, ApiToken):
        environment = token.environment
    else:
        token = None
        environment = environment_for_session(request)
    actor = Actor(
        # Authenticated, so a User (the project's user model), never AnonymousUser.
        user=cast("User", request.user),
        environment=environment,
        door=door,
        token=token,
        ip=client_ip(request),
        request_id=getattr(request, "request_id", ""),
    )
    # The request log reads the environment from here (marketerapi.middleware.RequestLogMiddleware).
    getattr(request, "_request", request).marketerapi_actor = actor
    logs.bind(actor=actor.label, environment=environment.slug, door=door)
    return actor
