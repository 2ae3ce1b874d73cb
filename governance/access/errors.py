"""Refusals of access: environments, API tokens and service accounts. Each names its code
once; the message and hint are given where it is raised. Refusals by role go through the
policy engine (`permission_denied`, governance/policy/engine.py)."""

from __future__ import annotations

from marketerapi.problems import Conflict, InvalidInput, NotFound


class EnvironmentNotFound(NotFound):
    code = "environment_not_found"


class TokenNotFound(NotFound):
    """A token of another environment, or one the actor does not answer for: 404, so ids do not leak."""


class ServiceAccountNotFound(InvalidInput):
    code = "service_account_not_found"


class UnknownScope(InvalidInput):
    code = "unknown_scope"


class NoScope(InvalidInput):
    code = "no_scope"


class ScopeExceedsRoles(InvalidInput):
    code = "scope_exceeds_roles"


class ExpiryTooFar(InvalidInput):
    code = "expiry_too_far"


class InvalidRateLimits(InvalidInput):
    code = "invalid_rate_limits"


class TokenAlreadyRevoked(Conflict):
    code = "already_revoked"


class UsernameTaken(Conflict):
    code = "username_taken"
