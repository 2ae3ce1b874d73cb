"""The metrics reads, each with its one access check (`metrics.view`: approvers, admins,
marketing ops) and scoped to the actor's environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from governance import policy
from governance.actors import Actor
from governance.metrics import adoption, feedback
from governance.metrics.period import period_parse


def adoption_metrics(*, actor: Actor, params: Mapping[str, Any]) -> dict[str, Any]:
    policy.require(actor, "metrics.view")
    return adoption.adoption_report(period_parse(actor=actor, params=params))


def policy_metrics(*, actor: Actor, params: Mapping[str, Any]) -> dict[str, Any]:
    policy.require(actor, "metrics.view")
    return feedback.policy_report(period_parse(actor=actor, params=params))


def policy_simulate(*, actor: Actor, rule: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """`metrics.view`: replay the period (default the last 30 days) against a proposed rule."""
    from governance.metrics.simulation import simulate

    policy.require(actor, "metrics.view")
    return simulate(period_parse(actor=actor, params=params), rule)
