"""Reads of configuration: the actions an approval policy can name (for the admin's forms
and filters, and the validator of a policy's action)."""

from __future__ import annotations

from governance import policy
from governance.models import ApprovalPolicy


def approval_actions() -> list[str]:
    """Actions an approval policy can apply to: those registered as asking for approval, and
    those the existing policies name (actions of apps not installed yet, e.g. campaign.activate)."""
    registered = {name for name, spec in policy.ACTIONS.items() if spec.approval}
    in_use = set(ApprovalPolicy.objects.values_list("action", flat=True).distinct())
    return sorted(registered | in_use)
