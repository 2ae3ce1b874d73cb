"""Approval requests: actions that wait for other people's votes (PRODUCT.md §5).

The pattern for a domain service (docs/approvals.md has the whole story):

    decision = policy.require(actor, "audience.archive", audience, context)
    if decision.needs_approval:
        request = approval_request_create(
            actor=actor, action="audience.archive", target=audience,
            summary=f"Archive the published audience {audience.name!r}",
            change={"context": context}, decision=decision, fingerprint=audience_fingerprint(audience),
        )
        return ...  # the view answers 202 with approval_brief(request)

and, once, at import of the domain's services module:

    register_executor("audience.archive", run_archive, fingerprint=audience_fingerprint)

Modules: `services` (the writes), `selectors` (reads and who may vote), `registry`
(executors and fingerprints), `steps` (matching votes to a policy's steps), `errors`.
Change windows live in governance/windows.py; the Celery tasks in governance/tasks.py.
"""

from governance.approvals.registry import (
    Execution,
    ExecutorMissing,
    fingerprint_of,
    register_executor,
    register_fingerprint,
)
from governance.approvals.services import (
    EXPIRY,
    VoteOutcome,
    approval_approve,
    approval_brief,
    approval_cancel,
    approval_execute,
    approval_reject,
    approval_request_create,
    approvals_due,
    approvals_expire,
)
from governance.windows import WINDOWED_ACTIONS

__all__ = [
    "EXPIRY",
    "WINDOWED_ACTIONS",
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
    "register_executor",
    "register_fingerprint",
]
