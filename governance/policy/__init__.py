"""The one policy point: `decide(actor, action, target, context)` → Decision.

Services ask here and nowhere else; they never call `has_perm` themselves. Every action
of every app is a row of `actions.ACTIONS`; `engine` applies the rules in a fixed order
and names the rule that fired. Apps add domain rules with `register_hook` in their
AppConfig.ready().
"""

from governance.policy.actions import ACTIONS, Action
from governance.policy.engine import (
    ALLOW,
    DENY,
    NEEDS_APPROVAL,
    Decision,
    PolicyDenied,
    UnknownAction,
    applicable_approval_policy,
    decide,
    register_hook,
    require,
)

__all__ = [
    "ACTIONS",
    "ALLOW",
    "DENY",
    "NEEDS_APPROVAL",
    "Action",
    "Decision",
    "PolicyDenied",
    "UnknownAction",
    "applicable_approval_policy",
    "decide",
    "register_hook",
    "require",
]
