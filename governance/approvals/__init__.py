"""Approval requests: actions that wait for other people's votes (PRODUCT.md §5).

The pattern for a domain service (docs/approvals.md has the whole story): ask the policy
engine once, then file a request or run now with one call:

    decision = policy.require(actor, "audience.archive", audience, context)
    return request_or_run(
        actor=actor, action="audience.archive", target=audience, decision=decision,
        summary=f"Archive the published audience {audience.name!r}",
        change={"context": context}, fingerprint=audience_fingerprint(audience),
        run=lambda: _archive(actor, audience, decision),
    )  # ActionOutcome: .result when it ran, .approval (the view answers 202 with approval_brief)

and, once, in the domain app's AppConfig.ready():

    register_executor("audience.archive", run_archive, fingerprint=audience_fingerprint)

Modules: `services` (the writes), `selectors` (reads and who may vote), `registry`
(executors and fingerprints), `steps` (matching votes to a policy's steps), `errors`.
Change windows live in governance/approvals/windows.py; the Celery tasks in governance/tasks.py.
"""

from governance.approvals.errors import ApprovalPending
from governance.approvals.registry import (
    Execution,
    ExecutorMissing,
    fingerprint_of,
    register_change_describer,
    register_executor,
    register_fingerprint,
)
from governance.approvals.services import (
    EXPIRY,
    ActionOutcome,
    VoteOutcome,
    approval_approve,
    approval_brief,
    approval_cancel,
    approval_execute,
    approval_reject,
    approval_request_create,
    approvals_due,
    approvals_expire,
    request_or_run,
)
from governance.approvals.windows import WINDOWED_ACTIONS

__all__ = [
    "EXPIRY",
    "WINDOWED_ACTIONS",
    "ActionOutcome",
    "ApprovalPending",
    "Execution",
    "ExecutorMissing",
    "VoteOutcome",
    "approval_approve",
    "approval_brief",
    "approval_cancel",
    "approval_execute",
    "approval_reject",
    "approval_request_create",
    "approvals_due",
    "approvals_expire",
    "fingerprint_of",
    "register_change_describer",
    "register_executor",
    "register_fingerprint",
    "request_or_run",
]
