"""API authentication: `Authorization: Bearer mk_<environment>_…` tokens, or the portal session."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions

from governance import permcache
from governance.limits import throttling
from governance.models import ApiToken, hash_token

# last_used_at is written at most once a minute per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenProblem(exceptions.AuthenticationFailed):
    def __init__(self, detail: str, code: str, hint: str) -> None:
        super().__init__(detail, code)
        self.hint = hint


def _problem(token: ApiToken) -> TokenProblem | None:
    if token.is_revoked:
        return TokenProblem(
            f"The token {token.prefix}… was revoked on {token.revoked_at:%Y-%m-%d}.",
            "token_revoked",
            "Ask a developer for a new token and update the integration that used this one.",
        )
    if token.is_expired:
        return TokenProblem(
            f"The token {token.prefix}… expired on {token.expires_at:%Y-%m-%d}.",
            "token_expired",
            "Issue a new token and replace the expired one in your integration.",
        )
    if not token.user.is_active:
        return TokenProblem(
            "The token's owner is no longer active.",
            "owner_inactive",
            "Ask an admin to move the integration to a token of an active user or service account.",
        )
    return None


def _note_use(key_hash: str, token: ApiToken, version: int) -> None:
    """Write last_used_at at most once a minute per token, whatever the number of processes."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at <= LAST_USED_RESOLUTION:
        return
    if cache.add(f"mk:tok:used:{key_hash}", 1, int(LAST_USED_RESOLUTION.total_seconds())):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    # Else another process wrote it less than a minute ago. Either way this process's
    # copy moves on, so it asks again in a minute, not on every request.
    token.last_used_at = now
    permcache.token_used(key_hash, token, version)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise TokenProblem(
                "The Authorization header should be `Bearer <token>`.",
                "malformed_authorization",
                "Send exactly one token after the word Bearer, with no spaces in it.",
            )
        raw = parts[1]
        if not raw.startswith("mk_"):
            raise TokenProblem(
                "This is not a marketerapi token.",
                "invalid_token",
                "marketerapi tokens start with mk_<environment>_. Issue one with `python manage.py issue_token`.",
            )
        key_hash = hash_token(raw)
        token: ApiToken | None = None
        version = 0
        cached = permcache.local_token(key_hash)
        if cached is not None:
            token, version = cached
            # A token that is usable as cached: confirm the cache is current and count the
            # request (one Redis step), or find it is not and reload. One that is not
            # usable as cached is reloaded, so that the refusal reflects the database.
            if _problem(token) is not None or not (
                throttling.count_for_token(request, token, version) or permcache.is_current(version)
            ):
                token = None
        if token is None:
            try:
                token, version = permcache.load_token(key_hash)
            except ApiToken.DoesNotExist:
                raise TokenProblem(
                    "The token is not known.",
                    "invalid_token",
                    "Check that the whole token was copied; a lost token cannot be shown again, issue a new one.",
                ) from None
            problem = _problem(token)
            if problem is not None:
                raise problem
        _note_use(key_hash, token, version)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'


class PortalSessionAuthentication(authentication.SessionAuthentication):
    """The portal's session, with CSRF checks on unsafe methods (DRF's behaviour)."""


# --- for the health endpoint: authentication that survives a Redis outage ------------------


def _prime_tolerantly(user: Any) -> None:
    """The user's permissions and roles, from the cache, or from the database when the
    cache (Redis) does not answer."""
    from marketerapi.problems import is_service_outage

    try:
        permcache.prime(user)
    except Exception as exc:
        if not is_service_outage(exc):
            raise
        permcache.prime_from_database(user)


class OutageTolerantTokenAuthentication(BearerTokenAuthentication):
    """Bearer tokens for `GET /status`, which must report a Redis outage rather than fail
    with it (every other view answers 503 then, docs/operations.md).

    When the token cache does not answer, the token is read from the database instead,
    read-only: nothing is cached and last_used_at is not written. The refusals are the same
    (unknown, revoked, expired, inactive owner); roles and permissions come from the
    database. Only for read-only views that need nothing else from Redis.
    """

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        from marketerapi.problems import is_service_outage

        try:
            return super().authenticate(request)
        except Exception as exc:
            if not is_service_outage(exc):
                raise
        # The header was parsed before the cache was asked: it holds `Bearer mk_…`.
        raw = authentication.get_authorization_header(request).decode("latin-1").split()[1]
        try:
            token = ApiToken.objects.select_related("user", "environment").get(key_hash=hash_token(raw))
        except ApiToken.DoesNotExist:
            # As BearerTokenAuthentication says it.
            raise TokenProblem(
                "The token is not known.",
                "invalid_token",
                "Check that the whole token was copied; a lost token cannot be shown again, issue a new one.",
            ) from None
        problem = _problem(token)
        if problem is not None:
            raise problem
        permcache.prime_from_database(token.user)
        return token.user, token


class OutageTolerantSessionAuthentication(PortalSessionAuthentication):
    """The portal session for `GET /status`: the user's rights from the database when the
    cache (Redis) does not answer (the session itself lives in the database)."""

    def authenticate(self, request: Any) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is not None:
            _prime_tolerantly(result[0])
        return result
