"""Rate limits in DRF and on every API response (governance/limits/ratelimit.py has the rules).

- `RateClassThrottle` is DRF's default throttle (settings.REST_FRAMEWORK): it counts the
  request in the view's rate class for its caller and refuses with 429 `rate_limited`.
  It leaves its answer on the Django request.
- A request with a valid API token is counted earlier, while it is authenticated
  (governance/access/auth.py → `count_for_token`): in the same Redis step that checks the token
  cache is current, so a warm token request costs one Redis round trip in all. The
  throttle then uses that count instead of counting again.
- `RateLimitMiddleware` puts `RateLimit-Policy` and `RateLimit` on every response under
  /api/. DRF throttles after authentication and permissions, so a request refused before
  that (401, 403, an unknown path, 405) has no answer yet: the middleware counts it
  itself, in the view's class (read or write by method when unknown) for its caller —
  the IP address when nobody signed in. Refused requests therefore count too, and a
  client knocking with a bad token is slowed down by its IP address: once over the
  limit, its 401s become 429s.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.throttling import BaseThrottle

from governance.actors import client_ip
from governance.limits import ratelimit
from governance.limits.errors import RateLimited
from governance.models import ApiToken
from marketerapi.problems import PROBLEM_CONTENT_TYPE

API_PREFIX = "/api/"
# The attribute of the Django request that carries the throttle's answer.
RESULT_ATTRIBUTE = "ratelimit_result"
# The count made while authenticating a token, for the throttle to use (once).
PRECOUNTED_ATTRIBUTE = "ratelimit_precounted"


def _roles(user: Any) -> list[str]:
    from governance import permcache

    # The same cached roles the policy engine reads: no query once cached.
    permcache.prime(user)
    return list(getattr(user, "_marketerapi_roles", []))


def caller_of(request: Any) -> tuple[str, list[str], dict[str, Any]]:
    """(subject, roles, token overrides) of a request: per token, per user for a portal
    session, per IP address when nobody is signed in."""
    auth = getattr(request, "auth", None)
    user = getattr(request, "user", None)
    if isinstance(auth, ApiToken):
        overrides = auth.rate_limits if isinstance(auth.rate_limits, dict) else {}
        return f"token:{auth.pk}", _roles(auth.user), overrides
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}", _roles(user), {}
    return f"ip:{client_ip(request) or 'unknown'}", [], {}


def limits_of(request: Any) -> dict[str, ratelimit.Limit]:
    _, roles, overrides = caller_of(request)
    return ratelimit.limits_for(roles=roles, overrides=overrides)


def check_request(request: Any, rate_class: str) -> ratelimit.RateLimitResult:
    subject, roles, overrides = caller_of(request)
    result = ratelimit.check(subject, ratelimit.limit_for(rate_class, roles=roles, overrides=overrides))
    django_request = getattr(request, "_request", request)
    setattr(django_request, RESULT_ATTRIBUTE, result)
    return result


def count_for_token(request: Any, token: ApiToken, version: int) -> bool:
    """Count a request made with `token` (valid as cached under `version`) in its view's
    rate class now, in one atomic Redis step with checking that `version` is still the
    token cache's version (governance/permcache.py).

    True: the cached token is current and the request is counted; the throttle will use
    this count. False: nothing was counted — the version moved (reload the token), or the
    view has no RateClassThrottle, or there is no Redis shared by the cache and the
    limiter (then the caller checks the version its own way and the throttle counts).
    """
    from governance import permcache

    context = getattr(request, "parser_context", None) or {}
    view = context.get("view")
    if view is None or not any(
        isinstance(cls, type) and issubclass(cls, RateClassThrottle) for cls in getattr(view, "throttle_classes", ())
    ):
        return False
    version_key = permcache.redis_version_key()
    if version_key is None:
        return False
    try:
        rate_class = ratelimit.rate_class_for(view, request.method)
    except ValueError:
        return False
    overrides = token.rate_limits if isinstance(token.rate_limits, dict) else {}
    limit = ratelimit.limit_for(rate_class, roles=_roles(token.user), overrides=overrides)
    result = ratelimit.check_if_current(f"token:{token.pk}", limit, version_key=version_key, version=version)
    if result is None:
        return False
    django_request = getattr(request, "_request", request)
    setattr(django_request, RESULT_ATTRIBUTE, result)
    setattr(django_request, PRECOUNTED_ATTRIBUTE, result)
    return True


def _precounted(request: Any, rate_class: str) -> ratelimit.RateLimitResult | None:
    django_request = getattr(request, "_request", request)
    result = getattr(django_request, PRECOUNTED_ATTRIBUTE, None)
    if result is None:
        return None
    delattr(django_request, PRECOUNTED_ATTRIBUTE)
    return result if result.rate_class == rate_class else None


class RateClassThrottle(BaseThrottle):
    """DRF's default throttle: the view's rate class, per caller, shared by every process."""

    def allow_request(self, request: Any, view: Any) -> bool:
        rate_class = ratelimit.rate_class_for(view, request.method)
        result = _precounted(request, rate_class) or check_request(request, rate_class)
        if not result.allowed:
            # Raised rather than returning False, so the 429 carries the class, the limit
            # and a hint; DRF's handler turns it into problem+json like any refusal.
            raise RateLimited.from_result(result)
        return True

    def wait(self) -> float | None:
        return None


def _view_rate_class(request: HttpRequest) -> str:
    """The class the resolved view declares, or read/write by method (before DRF ran)."""
    match = getattr(request, "resolver_match", None)
    func = getattr(match, "func", None)
    declared = (getattr(func, "initkwargs", None) or {}).get("rate_class")
    view = SimpleNamespace(rate_class=declared) if declared else getattr(func, "cls", None)
    try:
        return ratelimit.rate_class_for(view, request.method or "GET")
    except ValueError:
        return ratelimit.READ if (request.method or "GET") in ratelimit.SAFE_METHODS else ratelimit.WRITE


class RateLimitMiddleware:
    """RateLimit headers on every API response; counts the requests DRF refused first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX):
            return response
        result = getattr(request, RESULT_ATTRIBUTE, None)
        if result is None:
            result = check_request(request, _view_rate_class(request))
        if not result.allowed and response.status_code >= 400 and response.status_code != 429:
            # Only a refusal is replaced: it did no work, and the caller is over its limit.
            # (A token request counted while authenticating and then refused by a
            # permission gets here with its count already made.)
            error = RateLimited.from_result(result)
            response = JsonResponse(error.as_problem(), status=429, content_type=PROBLEM_CONTENT_TYPE)
        for name, value in result.headers().items():
            if name == "Retry-After" and response.status_code != 429:
                continue
            response[name] = value
        return response
