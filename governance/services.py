"""Writes for governance objects; each asks the policy engine and audits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from governance import audit, policy
from governance.actors import Actor
from governance.models import ApiToken, hash_token


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


ALL_SCOPES = ["read", "write", "publish", "export", "ingest", "admin"]


def token_issue(
    *,
    actor: Actor,
    user: object,
    name: str,
    expires_at: datetime | None = None,
    scopes: list[str] | None = None,
) -> IssuedToken:
    """Issue a token for `user` in the actor's environment; the secret is returned once.

    A token never has more rights than its owner: scopes only narrow what the owner's
    roles allow, so every scope by default is safe.
    """
    decision = policy.require(actor, "token.create")
    secret = ApiToken.generate_secret(actor.environment)
    with transaction.atomic():
        token = ApiToken.objects.create(
            environment=actor.environment,
            user=user,
            name=name,
            owner=user,
            scopes=list(scopes if scopes is not None else ALL_SCOPES),
            prefix=secret[: len(f"mk_{actor.environment.slug}_") + 6],
            key_hash=hash_token(secret),
            expires_at=expires_at or ApiToken.default_expiry(),
        )
        audit.record(
            actor,
            "token.create",
            token,
            decision=decision,
            changes={"after": {"name": name, "user": str(user), "expires_at": token.expires_at.isoformat()}},
        )
    return IssuedToken(token=token, secret=secret)
