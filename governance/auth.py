"""API authentication: `Authorization: Bearer mk_<environment>_…` tokens, or the portal session."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from governance import permcache
from governance.models import ApiToken, hash_token

# last_used_at is written at most once a minute per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenProblem(exceptions.AuthenticationFailed):
    def __init__(self, detail: str, code: str, hint: str) -> None:
        super().__init__(detail, code)
        self.hint = hint


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
        token = permcache.cached_token(key_hash)
        try:
            if token is None:
                token = ApiToken.objects.select_related("user", "environment").get(key_hash=key_hash)
                permcache.cache_token(key_hash, token)
        except ApiToken.DoesNotExist:
            raise TokenProblem(
                "The token is not known.",
                "invalid_token",
                "Check that the whole token was copied; a lost token cannot be shown again, issue a new one.",
            ) from None
        if token.is_revoked:
            raise TokenProblem(
                f"The token {token.prefix}… was revoked on {token.revoked_at:%Y-%m-%d}.",
                "token_revoked",
                "Ask a developer for a new token and update the integration that used this one.",
            )
        if token.is_expired:
            raise TokenProblem(
                f"The token {token.prefix}… expired on {token.expires_at:%Y-%m-%d}.",
                "token_expired",
                "Issue a new token and replace the expired one in your integration.",
            )
        if not token.user.is_active:
            raise TokenProblem(
                "The token's owner is no longer active.",
                "owner_inactive",
                "Ask an admin to move the integration to a token of an active user or service account.",
            )
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
            permcache.cache_token(key_hash, token)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'


class PortalSessionAuthentication(authentication.SessionAuthentication):
    """The portal's session, with CSRF checks on unsafe methods (DRF's behaviour)."""
