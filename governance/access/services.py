"""Writes of access: issue and revoke API tokens, create service accounts. Each asks the
policy engine once and writes one audit event in the transaction of the change.

A token never has more rights than its owner (SCOPE_ROLES: which roles can use a scope);
its secret is returned once and only its hash is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from governance import policy
from governance.access.errors import (
    ExpiryTooFar,
    InvalidRateLimits,
    NoScope,
    ScopeExceedsRoles,
    TokenAlreadyRevoked,
    UnknownScope,
    UsernameTaken,
)
from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import ApiToken, ServiceAccount, TokenScope, hash_token
from governance.roles import ADMIN, ANALYST, APPROVER, CAMPAIGN_OPERATOR, COMPLIANCE_REVIEWER, DEVELOPER, ROLE_NAMES
from marketerapi.problems import InvalidInput

ALL_SCOPES = [s.value for s in TokenScope]
MAX_TOKEN_DAYS = 365

# Which roles can make use of a scope (PRODUCT.md §4). A scope none of the owner's
# roles can use is refused at issue time rather than silently useless.
SCOPE_ROLES: dict[str, frozenset[str]] = {
    TokenScope.READ: frozenset(ROLE_NAMES),
    # Approvers and compliance reviewers vote with `write`: a read-only token never approves.
    TokenScope.WRITE: frozenset({CAMPAIGN_OPERATOR, APPROVER, COMPLIANCE_REVIEWER, DEVELOPER, ADMIN}),
    TokenScope.PUBLISH: frozenset({CAMPAIGN_OPERATOR, DEVELOPER, ADMIN}),
    TokenScope.EXPORT: frozenset({ANALYST, CAMPAIGN_OPERATOR, COMPLIANCE_REVIEWER, ADMIN}),
    TokenScope.INGEST: frozenset({DEVELOPER, ADMIN}),
    TokenScope.ADMIN: frozenset({DEVELOPER, ADMIN}),
}


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def _roles_of(user: User) -> set[str]:
    return set(user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))


def _validate_scopes(scopes: list[str], user: User) -> list[str]:
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise UnknownScope(
            f"Unknown scope(s): {', '.join(map(str, unknown))}.",
            hint=f"Use any of: {', '.join(ALL_SCOPES)}.",
            errors=[
                {
                    "pointer": "/scopes",
                    "code": "unknown_scope",
                    "message": f"{s!r} is not a scope.",
                    "hint": f"Use any of: {', '.join(ALL_SCOPES)}.",
                }
                for s in unknown
            ],
        )
    if not scopes:
        raise NoScope("A token needs at least one scope.", hint='Add "read" at least.')
    roles = _roles_of(user)
    useless = [s for s in scopes if not (SCOPE_ROLES[s] & roles)]
    if useless:
        raise ScopeExceedsRoles(
            f"{user} holds no role that can use the scope(s) {', '.join(useless)}; a token never has more "
            "rights than its owner.",
            hint="Leave those scopes out, or ask an admin for the role that uses them.",
        )
    return sorted(set(scopes), key=ALL_SCOPES.index)


def _answerable_owner(actor: Actor, user: User) -> User:
    """The person who answers for a token of `user`: the user, or a service account's owner."""
    account = ServiceAccount.objects.filter(user=user).select_related("owner").first()
    if account is not None:
        if actor.user is not None and account.owner_id != actor.user.pk and ADMIN not in actor.roles:
            raise policy.PolicyDenied(
                f"The service account {user} is owned by {account.owner}; "
                "only its owner or an admin issues its tokens.",
                hint=f"Ask {account.owner} or an admin.",
                rule="service_account_owner",
            )
        return account.owner
    if actor.user is not None and user.pk != actor.user.pk:
        raise policy.PolicyDenied(
            "You may issue tokens for yourself or for service accounts you own.",
            hint="Sign in as that person, or create a service account for the integration.",
            rule="token_for_other_user",
        )
    return user


def token_issue(
    *,
    actor: Actor,
    user: User,
    name: str,
    expires_at: datetime | None = None,
    scopes: list[str] | None = None,
    rate_limits: dict[str, int] | None = None,
) -> IssuedToken:
    """Issue a token for `user` (the actor, or a service account the actor owns) in the
    actor's environment; the secret is returned once and only its hash is stored.

    A token never has more rights than its owner: the policy engine checks the owner's
    roles on every call, and scopes no role of the owner can use are refused here.
    """
    decision = policy.require(actor, "token.create")
    owner = _answerable_owner(actor, user)
    _check_rate_limits(actor, user, rate_limits or {})
    chosen = _validate_scopes(list(scopes if scopes is not None else _usable_scopes(user)), user)
    if expires_at is not None and expires_at > timezone.now() + timedelta(days=MAX_TOKEN_DAYS):
        raise ExpiryTooFar(
            f"Tokens live at most {MAX_TOKEN_DAYS} days.",
            hint="Choose an earlier expiry and rotate the token.",
        )
    secret = ApiToken.generate_secret(actor.environment)
    expires = expires_at or ApiToken.default_expiry()
    with transaction.atomic():
        token = ApiToken.objects.create(
            environment=actor.environment,
            user=user,
            owner=owner,
            created_by=actor.user,
            name=name,
            scopes=chosen,
            rate_limits=rate_limits or {},
            prefix=secret[: len(f"mk_{actor.environment.slug}_") + 6],
            key_hash=hash_token(secret),
            expires_at=expires,
        )
        audit.record(
            actor,
            "token.create",
            token,
            decision=decision,
            changes={
                "after": {
                    "name": name,
                    "user": str(user),
                    "owner": str(owner),
                    "scopes": chosen,
                    "expires_at": expires.isoformat(),
                }
            },
        )
    return IssuedToken(token=token, secret=secret)


def _check_rate_limits(actor: Actor, user: User, overrides: dict[str, Any]) -> None:
    """Per-token limits may lower a class freely; raising one above what the owner's roles
    give is for admins (or an operator at the shell)."""
    from governance.limits import ratelimit

    problems = ratelimit.override_errors(overrides)
    if problems:
        raise InvalidRateLimits(
            " ".join(problems),
            hint=f"Use rate classes {', '.join(ratelimit.RATE_CLASSES)} with whole numbers per minute.",
        )
    if actor.user is None or ADMIN in actor.roles:
        return
    roles = _roles_of(user)
    raised = [name for name, value in overrides.items() if int(value) > ratelimit.limit_for(name, roles=roles).limit]
    if raised:
        raise policy.PolicyDenied(
            f"Only an admin may raise a token's limit above its roles' ({', '.join(raised)}).",
            hint="Ask an admin, or leave rate_limits out to use the roles' limits.",
            rule="rate_limit_raise",
        )


def _usable_scopes(user: User) -> list[str]:
    roles = _roles_of(user)
    return [s for s in ALL_SCOPES if SCOPE_ROLES[s] & roles] or [TokenScope.READ.value]


def token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    """Revoke a token at once; calls with it then get 401 `token_revoked`."""
    decision = policy.require(actor, "token.revoke", token)
    if actor.user is not None and ADMIN not in actor.roles and actor.user.pk not in (token.user_id, token.owner_id):
        raise policy.PolicyDenied(
            "Only the token's owner or an admin may revoke it.", hint="Ask the owner or an admin.", rule="token_owner"
        )
    with transaction.atomic():
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            raise TokenAlreadyRevoked(f"The token {locked.prefix}… is already revoked.", hint="Nothing to do.")
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit.record(actor, "token.revoke", locked, decision=decision, changes={"after": {"revoked": True}})
    return locked


def service_account_create(
    *, actor: Actor, username: str, roles: list[str], description: str = "", owner: User | None = None
) -> ServiceAccount:
    """Create an integration's own user, which cannot sign in, with a person who answers for it.

    Its roles are at most the creator's (an admin may give any role).
    """
    decision = policy.require(actor, "service_account.create")
    owner = owner or actor.user
    if owner is None:
        raise InvalidInput("A service account needs an owner.", hint="Name the person who answers for it.")
    unknown = [r for r in roles if r not in ROLE_NAMES]
    if unknown:
        raise InvalidInput(f"Unknown role(s): {', '.join(unknown)}.", hint=f"Use any of: {', '.join(ROLE_NAMES)}.")
    if actor.user is not None and ADMIN not in actor.roles:
        beyond = sorted(set(roles) - set(actor.roles))
        if beyond:
            raise policy.PolicyDenied(
                f"You may give a service account only roles you hold; not {', '.join(beyond)}.",
                hint="Ask an admin to create it.",
                rule="role_escalation",
            )
    if User.objects.filter(username=username).exists():
        raise UsernameTaken(f"The username {username!r} is taken.", hint="Choose another name.")
    with transaction.atomic():
        user = User(username=username, is_active=True)
        user.set_unusable_password()
        user.save()
        user.groups.set(Group.objects.filter(name__in=roles))
        account = ServiceAccount.objects.create(user=user, owner=owner, description=description)
        audit.record(
            actor,
            "service_account.create",
            account,
            decision=decision,
            changes={"after": {"username": username, "roles": roles, "owner": str(owner)}},
        )
    return account
