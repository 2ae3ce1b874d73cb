"""The policy engine behind the one policy point: `decide(actor, action, target, context)` → Decision.

Services ask here and nowhere else; they never call `has_perm` themselves. Each action
is registered with what it needs; `decide` applies the rules in a fixed order and the
first that refuses (or asks for approval) gives the decision, with human-readable
reasons and the name of the rule that fired:

1. environment       the target lives in the actor's environment
2. system_actor      shell and scheduler work with no person behind it is allowed
3. inactive_user     the person may still sign in
4. token_scope       a token carries the scope the action needs
5. role_permission   one of the person's roles grants the action (some roles only in sandbox)
6. object_permission changing an owned object needs its team, a share, or the admin role
7. feature_flag      the capability's flag is on for the person
8. hooks             rules the domain apps register (consent, regional restrictions)
9. approval_policy   the environment's policy may ask for approvals first
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import ApprovalPolicy, Outcome
from governance.policy.actions import ACTIONS, Action
from governance.roles import ADMIN, SANDBOX_ONLY, grants_here, roles_with_permission
from marketerapi.problems import ApplicationError

ALLOW = "allow"
DENY = "deny"
NEEDS_APPROVAL = "needs_approval"


@dataclass(frozen=True)
class Decision:
    outcome: str
    rule: str
    reasons: list[str] = field(default_factory=list)
    hint: str = ""
    required_approvals: int = 0
    # One list of roles per approval still to collect, e.g. [["approver"], ["developer", "admin"]].
    approver_roles: list[list[str]] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOW

    @property
    def needs_approval(self) -> bool:
        return self.outcome == NEEDS_APPROVAL

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "rule": self.rule,
            "reasons": self.reasons,
            "hint": self.hint,
            "required_approvals": self.required_approvals,
            "approver_roles": self.approver_roles,
        }


Hook = Callable[[Actor, Action, Any, dict[str, Any]], "Decision | None"]
_HOOKS: list[tuple[str, Hook]] = []


def register_hook(action_prefix: str, hook: Hook) -> None:
    """Add a domain rule for every action whose name starts with `action_prefix`.

    A hook returns None to say nothing, or a Decision (deny or needs_approval) to decide.
    Apps register their hooks in AppConfig.ready(), so every process has them.
    """
    if (action_prefix, hook) not in _HOOKS:
        _HOOKS.append((action_prefix, hook))


class UnknownAction(LookupError):
    pass


class PolicyDenied(ApplicationError):
    status = 403
    code = "permission_denied"
    title = "You may not do this"


def _deny(rule: str, reason: str, hint: str) -> Decision:
    return Decision(DENY, rule, [reason], hint=hint)


def _roles_text(roles: list[str]) -> str:
    return ", ".join(roles) if roles else "an admin"


def _check_environment(actor: Actor, target: Any) -> Decision | None:
    env_id = getattr(target, "environment_id", None)
    if env_id is not None and env_id != actor.environment.pk:
        return _deny(
            "environment",
            f"The object belongs to another environment than {actor.environment.slug!r}.",
            "Use a token of the object's environment.",
        )
    return None


def _check_scope(actor: Actor, spec: Action) -> Decision | None:
    token = actor.token
    if token is None or spec.scope in token.scopes:
        return None
    return _deny(
        "token_scope",
        f"{spec.description} needs a token with the {spec.scope!r} scope; this token has: "
        f"{', '.join(token.scopes) or 'none'}.",
        f"Issue a token with the {spec.scope!r} scope (POST /api/v1/tokens/) and use it for this call.",
    )


# The authentication backends whose only global (not per-object) permissions are the
# user's and groups' model permissions, i.e. what `get_all_permissions()` returns.
_MODEL_PERMISSION_BACKENDS = frozenset(
    {"django.contrib.auth.backends.ModelBackend", "guardian.backends.ObjectPermissionBackend"}
)


def _has_permission(user: Any, permission: str) -> bool:
    """`user.has_perm(permission)`, answered from the permissions the cache primed
    (governance/permcache.py) without walking the authentication backends when they are
    the model and object backends (which grant no other global permission)."""
    perms = getattr(user, "_perm_cache", None)
    if perms is None or not user.is_active or user.is_superuser:
        return bool(user.has_perm(permission))
    if permission in perms:
        return True
    if _MODEL_PERMISSION_BACKENDS.issuperset(settings.AUTHENTICATION_BACKENDS):
        return False
    return bool(user.has_perm(permission))


def _check_role(actor: Actor, spec: Action) -> Decision | None:
    if not spec.permission:
        if spec.any_role and not actor.roles:
            from governance.roles import ROLE_NAMES

            return _deny(
                "role_permission",
                f"{spec.description} needs one of the roles: {_roles_text(list(ROLE_NAMES))}. You have: no role.",
                "Ask an admin to give you a role.",
            )
        return None
    user = actor.user
    if user is None or not _has_permission(user, spec.permission):
        holders = roles_with_permission(spec.permission)
        return _deny(
            "role_permission",
            f"{spec.description} needs one of the roles: {_roles_text(holders)}. "
            f"You have: {', '.join(actor.roles) or 'no role'}.",
            f"Ask an admin to give you one of the roles: {_roles_text(holders)}.",
        )
    is_sandbox = actor.environment.is_sandbox
    # Only a role that holds this permission in sandboxes only can make it "not here".
    if is_sandbox or not any(spec.permission in SANDBOX_ONLY.get(role, ()) for role in actor.roles):
        return None
    holders = roles_with_permission(spec.permission)
    granting = [role for role in actor.roles if role in holders]
    if granting and not any(grants_here(role, spec.permission, is_sandbox) for role in granting):
        others = [r for r in holders if grants_here(r, spec.permission, False)]
        return _deny(
            "role_environment",
            f"Your role {', '.join(granting)} may do this only in a sandbox, not in {actor.environment.slug}.",
            f"Try it in the sandbox, or ask someone with the role {_roles_text(others)} here.",
        )
    return None


def _check_object(actor: Actor, spec: Action, target: Any) -> Decision | None:
    if spec.object_permission is None or target is None or not hasattr(target, "owner_team_id"):
        return None
    from governance.access.objectperms import can_change

    if ADMIN in actor.roles or can_change(actor.user, target):
        return None
    team = getattr(target, "owner_team", None)
    team_name = team.name if team is not None else "no team"
    return _deny(
        "object_permission",
        f"{target} is owned by the team {team_name!r}; you are not in it and it was not shared with you.",
        f"Ask the {team_name} team (or an admin) to share it with you{_copy_offer(spec, target)}.",
    )


def _copy_offer(spec: Action, target: Any) -> str:
    """ ", or copy it…" when the object's kind has a copy action (`<kind>.copy`, e.g.
    `audience.copy`), and how; nothing otherwise, so no hint offers what does not exist."""
    kind = spec.name.split(".", 1)[0]
    if f"{kind}.copy" not in ACTIONS:
        return ""
    return (
        f", or copy it into your team as a draft and work on the copy (Copy on its page in the portal; "
        f"POST /api/v1/{kind}s/{target.pk}/copy)"
    )


def _check_flag(actor: Actor, spec: Action) -> Decision | None:
    if not spec.flag:
        return None
    from governance.flags.errors import turn_on_hint
    from governance.flags.selectors import flag_active_for

    if flag_active_for(spec.flag, actor):
        return None
    return _deny(
        "feature_flag",
        f"{spec.description} is not enabled for you yet (flag {spec.flag!r}).",
        turn_on_hint(spec.flag),
    )


def _check_hooks(actor: Actor, spec: Action, target: Any, context: dict[str, Any]) -> Decision | None:
    for prefix, hook in _HOOKS:
        if spec.name.startswith(prefix):
            decision = hook(actor, spec, target, context)
            if decision is not None and decision.outcome != ALLOW:
                return decision
    return None


def applicable_approval_policy(environment: Any, action: str, context: dict[str, Any]) -> ApprovalPolicy | None:
    """Of the active policies for (environment, action) whose condition holds, the most demanding."""
    best: ApprovalPolicy | None = None
    for policy in ApprovalPolicy.objects.filter(environment=environment, action=action, is_active=True):
        if policy.metric and policy.threshold is not None:
            value = context.get(policy.metric)
            if value is None or value <= policy.threshold:
                continue
        if best is None or len(policy.steps) > len(best.steps):
            best = policy
    return best


def _check_approval(actor: Actor, spec: Action, context: dict[str, Any]) -> Decision | None:
    if not spec.approval or context.get("approved_request") or actor.environment.is_sandbox:
        return None
    policy = applicable_approval_policy(actor.environment, spec.name, context)
    if policy is None:
        return None
    condition = f" ({policy.metric} {context.get(policy.metric):,} > {policy.threshold:,})" if policy.metric else ""
    return Decision(
        NEEDS_APPROVAL,
        "approval_policy",
        [
            f"In {actor.environment.slug}, {policy.description.lower() or spec.description.lower()}{condition} "
            f"needs {len(policy.steps)} approval(s)."
        ],
        hint="The request waits for approval; you will see it under /api/v1/approvals/.",
        required_approvals=len(policy.steps),
        approver_roles=[list(step) for step in policy.steps],
        policy={
            "id": policy.pk,
            "action": policy.action,
            "metric": policy.metric,
            "threshold": policy.threshold,
            "steps": policy.steps,
            "description": policy.description,
        },
    )


def decide(actor: Actor, action: str, target: Any = None, context: dict[str, Any] | None = None) -> Decision:
    """The one policy point: allow, deny or needs_approval for `actor` doing `action` on
    `target`, with the reasons and the rule that fired. Reads only; `require` audits."""
    try:
        spec = ACTIONS[action]
    except KeyError:
        raise UnknownAction(f"{action!r} is not a registered action") from None
    context = context or {}

    refusal = _check_environment(actor, target)
    if refusal:
        return refusal
    if actor.is_system:
        return Decision(ALLOW, "system_actor", [f"Run by the system through the {actor.door} door."])
    if actor.user is None or not actor.user.is_active:
        return _deny("inactive_user", "The user is not active.", "Ask an admin to reactivate you.")

    decision = (
        _check_scope(actor, spec)
        or _check_role(actor, spec)
        or _check_object(actor, spec, target)
        or _check_flag(actor, spec)
        or _check_hooks(actor, spec, target, context)
        or _check_approval(actor, spec, context)
    )
    if decision is not None:
        return decision

    return Decision(
        ALLOW, "role_permission", [f"Your roles allow: {spec.description[0].lower()}{spec.description[1:]}."]
    )


def require(actor: Actor, action: str, target: Any = None, context: dict[str, Any] | None = None) -> Decision:
    """Decide; on a denial, record the denied attempt and raise PolicyDenied.

    Returns allow and needs_approval decisions to the service, which files the approval
    request itself. The denial is written in its own transaction so that it survives the
    refusal: call `require` before opening the service's transaction.
    """
    decision = decide(actor, action, target, context)
    if decision.outcome == DENY:
        if ACTIONS[action].unsafe:
            with transaction.atomic():
                audit.record(actor, action, target, outcome=Outcome.DENIED, decision=decision)
        error: ApplicationError = PolicyDenied(" ".join(decision.reasons), hint=decision.hint, rule=decision.rule)
        if decision.rule == "feature_flag":
            # A capability behind a flag: the same problem as the flag gates of views.
            from governance.flags.errors import FeatureDisabled

            error = FeatureDisabled(
                " ".join(decision.reasons), hint=decision.hint, rule=decision.rule, flag=ACTIONS[action].flag
            )
        if ACTIONS[action].unsafe:
            # Inside an idempotency claim (governance/limits/idempotency.py) the transaction above is
            # a savepoint that this refusal rolls back; the claim records the denial again.
            error.denial = (actor, action, target, decision)  # type: ignore[attr-defined]
        raise error
    return decision
