"""The one policy point: `decide(actor, action, target, context)` → Decision.

Services ask here and nowhere else; they never call `has_perm` themselves. Actions are
registered with the permission they need; the rules below combine into one decision
with human-readable reasons and the rule that fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from governance import audit
from governance.actors import Actor
from governance.models import Outcome
from governance.roles import roles_with_permission
from marketerapi.problems import ApplicationError

ALLOW = "allow"
DENY = "deny"
NEEDS_APPROVAL = "needs_approval"


@dataclass(frozen=True)
class Action:
    name: str
    permission: str | None
    description: str
    # Safe actions only read; unsafe ones change state and are audited by their service.
    unsafe: bool = True


@dataclass(frozen=True)
class Decision:
    outcome: str
    rule: str
    reasons: list[str] = field(default_factory=list)
    hint: str = ""
    required_approvals: int = 0
    approver_roles: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOW


ACTIONS: dict[str, Action] = {}


def register(name: str, permission: str | None, description: str, *, unsafe: bool = True) -> Action:
    action = Action(name, permission, description, unsafe)
    ACTIONS[name] = action
    return action


register("profile.view", "audiences.view_profile", "See profiles, PII masked", unsafe=False)
register("profile.view_pii", "audiences.view_profile_pii", "See profiles' emails, phones and names", unsafe=False)
register("profile.ingest", "audiences.ingest_profiles", "Upsert profiles in bulk")
register("profile_event.ingest", "audiences.ingest_profiles", "Ingest behavioural profile events")
register("consent.sync", "audiences.sync_consent", "Apply consent updates")
register("consent.view", "audiences.view_consent", "See a profile's consent ledger", unsafe=False)
register("domain_event.view", "integrations.view_outboxevent", "See the timeline of domain events", unsafe=False)
register("token.create", "governance.add_apitoken", "Issue an API token")
register("sandbox.reset", "audiences.reset_sandbox", "Rebuild a sandbox's synthetic data")


class UnknownAction(LookupError):
    pass


class PolicyDenied(ApplicationError):
    status = 403
    code = "permission_denied"
    title = "You may not do this"


def _target_environment_id(target: Any) -> int | None:
    return getattr(target, "environment_id", None)


def decide(actor: Actor, action: str, target: Any = None, context: dict[str, Any] | None = None) -> Decision:
    try:
        spec = ACTIONS[action]
    except KeyError:
        raise UnknownAction(f"{action!r} is not a registered action") from None

    env_id = _target_environment_id(target)
    if env_id is not None and env_id != actor.environment.pk:
        return Decision(
            DENY,
            "environment_mismatch",
            [f"The object belongs to another environment than {actor.environment.slug!r}."],
            hint="Use a token of the object's environment.",
        )

    if actor.is_system:
        return Decision(ALLOW, "system_actor", [f"Run by the system through the {actor.door} door."])

    user = actor.user
    if user is None or not user.is_active:
        return Decision(DENY, "inactive_user", ["The user is not active."], hint="Ask an admin to reactivate you.")

    if spec.permission and not user.has_perm(spec.permission):
        holders = roles_with_permission(spec.permission)
        who = ", ".join(holders) if holders else "an admin"
        return Decision(
            DENY,
            "role_permission",
            [f"{spec.description} needs one of the roles: {who}. You have: {', '.join(actor.roles) or 'no role'}."],
            hint=f"Ask an admin to give you one of the roles: {who}.",
        )

    return Decision(ALLOW, "role_permission", [f"Your roles allow: {spec.description.lower()}."])


def require(actor: Actor, action: str, target: Any = None, context: dict[str, Any] | None = None) -> Decision:
    """Decide; on a denial, record the denied attempt and raise PolicyDenied.

    The denial is written in its own transaction so that it survives the refusal.
    """
    decision = decide(actor, action, target, context)
    if decision.outcome == DENY:
        if ACTIONS[action].unsafe:
            with transaction.atomic():
                audit.record(actor, action, target, outcome=Outcome.DENIED, decision=decision)
        raise PolicyDenied(" ".join(decision.reasons), hint=decision.hint, rule=decision.rule)
    return decision
