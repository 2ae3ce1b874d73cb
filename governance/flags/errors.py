"""Refusals of feature flags: reading a flag that is off for you, a flag that does not
exist, and the two rules of personalization flags (switching one off needs approvals;
one is never deleted)."""

from __future__ import annotations

from marketerapi.problems import ApplicationError, Conflict, NotFound


class FeatureDisabled(ApplicationError):
    status = 403
    code = "feature_disabled"
    title = "This feature is not enabled for you"
    hint = "Ask an admin to add you to the flag's pilot group; GET /api/v1/flags/ lists what is on for you."


def turn_on_hint(name: str) -> str:
    """The hint of a capability that is off for someone: which flag, and who turns it on."""
    return (
        f"Ask an admin to turn on {name} for your team (add your team to the flag's pilot group); "
        "GET /api/v1/flags/ lists what is on for you."
    )


class FlagNotFound(NotFound):
    code = "flag_not_found"


class PersonalizationFlagNeedsApproval(ApplicationError):
    status = 403
    code = "personalization_flag_needs_approval"
    title = "This flag can only be switched off with approvals"
    hint = (
        "Make the change from production (a mk_production_… token, or the portal switched to production); "
        "it is filed there for an approver and an admin to approve."
    )


class PersonalizationFlagUndeletable(Conflict):
    code = "personalization_flag_undeletable"
    title = "A flag that affects personalization is never deleted"
    hint = "Switch it off for everyone first (with approvals), then unmark it as affecting personalization."
