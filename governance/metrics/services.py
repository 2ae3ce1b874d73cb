"""Proposals of approval-policy changes by marketing ops, applied once an admin approves.

`approval_policy_propose` always files an approval request — in every environment, the
sandbox too: a proposal is not a change (the policy hook below says so). The request
carries the proposed values and what the simulation of the last 30 days says they would
have done, so the admin decides on evidence. Approving it runs `_apply` with the proposer
as actor and the admin's vote on the audit event.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance import policy
from governance.actors import Actor
from governance.approvals import ActionOutcome, Execution, request_or_run
from governance.audit import trail as audit
from governance.metrics.period import period_parse
from governance.metrics.simulation import simulate
from governance.models import ApprovalPolicy, ApprovalRequest
from governance.policy.engine import NEEDS_APPROVAL, Decision
from marketerapi.problems import ApplicationError

PROPOSE = "approval_policy.propose"
APPLIED_BY = [["admin"]]
FIELDS = ("action", "metric", "threshold", "steps", "description", "is_active")


class PolicyNotFound(ApplicationError):
    status = 404
    code = "not_found"
    title = "Not found"
    hint = "Name an approval policy of your environment by its id (GET the admin's list), or leave policy_id out."


def proposal_needs_an_admin(actor: Actor, spec: Any, target: Any, context: dict[str, Any]) -> Decision | None:
    """Policy hook: a proposal waits for an admin, unless this is its approved run."""
    if spec.name != PROPOSE or context.get("approved_request"):
        return None
    return Decision(
        NEEDS_APPROVAL,
        "approval_policy_proposal",
        ["An approval-policy proposal is applied by an admin."],
        hint="An admin decides it under Approvals; it is applied when approved.",
        required_approvals=1,
        approver_roles=[list(step) for step in APPLIED_BY],
        policy={"action": PROPOSE, "steps": APPLIED_BY, "description": "Approval-policy proposals"},
    )


def _target(actor: Actor, rule: dict[str, Any]) -> Any:
    if rule.get("policy_id") is None:
        return ("approval_policy_proposal", f"new-{rule['action']}", f"New approval policy for {rule['action']}")
    found = ApprovalPolicy.objects.filter(pk=rule["policy_id"], environment=actor.environment).first()
    if found is None:
        raise PolicyNotFound(f"No approval policy {rule['policy_id']} in {actor.environment.slug}.")
    return found


def policy_fingerprint(target: Any) -> str:
    if not isinstance(target, ApprovalPolicy):
        return ""
    values = {name: getattr(target, name) for name in FIELDS}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def approval_policy_propose(*, actor: Actor, rule: dict[str, Any]) -> ActionOutcome[Any]:
    """File a proposal (a parsed approval_policy rule: governance/metrics/rules.py) for an admin."""
    target = _target(actor, rule)
    decision = policy.require(actor, PROPOSE, target if isinstance(target, ApprovalPolicy) else None)
    evidence = simulate(period_parse(actor=actor, params={}), rule)
    proposal = {name: rule.get(name) for name in FIELDS}
    verb = "Change" if isinstance(target, ApprovalPolicy) else "Add"
    return request_or_run(
        actor=actor,
        action=PROPOSE,
        target=target,
        decision=decision,
        summary=f"{verb} the approval policy for {rule['action']}: {len(rule['steps'])} approval(s)"
        + (f" when {rule['metric']} > {rule['threshold']:,}" if rule.get("metric") else ""),
        change={"proposal": proposal, "policy_id": rule.get("policy_id"), "simulation": evidence["summary"]},
        fingerprint=policy_fingerprint(target),
        run=lambda: _apply(actor, target, proposal, decision, []),
    )


def _apply(
    actor: Actor, target: Any, proposal: dict[str, Any], decision: Decision, refs: list[dict[str, Any]]
) -> dict[str, Any]:
    with transaction.atomic():
        if isinstance(target, ApprovalPolicy):
            locked = ApprovalPolicy.objects.select_for_update().get(pk=target.pk)
            before = {name: getattr(locked, name) for name in FIELDS}
        else:
            locked = ApprovalPolicy(environment=actor.environment)
            before = None
        for name, value in proposal.items():
            setattr(locked, name, value)
        locked.save()
        audit.record(
            actor,
            PROPOSE,
            locked,
            decision=decision,
            changes={"before": before, "after": proposal, "applied_at": timezone.now().isoformat()},
            approval_refs=refs,
        )
    return {"approval_policy": locked.pk}


def execute_proposal(execution: Execution) -> dict[str, Any]:
    """The approved proposal, applied with the proposer as actor and the admin's vote recorded."""
    decision = policy.require(execution.actor, PROPOSE, None, execution.context)
    return _apply(execution.actor, execution.target, execution.change["proposal"], decision, execution.approval_refs)


def load_proposal_target(request: ApprovalRequest) -> Any:
    policy_id = (request.change or {}).get("policy_id")
    if policy_id is None:
        return None
    return ApprovalPolicy.objects.filter(pk=policy_id, environment=request.environment).first()
