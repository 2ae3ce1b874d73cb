"""The approval workflow's writes: file, approve, reject, cancel, expire, execute.

    pending ──last approval──> approved ──(window)──> executed | failed
       ├──any rejection──> rejected
       ├──requester cancels──> cancelled      (also while approved and not yet running)
       └──72 h──> expired

Every state change locks the request row (`select_for_update`) or claims it with a
conditional UPDATE, so twenty people approving at once make exactly one transition, and
the execution runs once however many workers are handed the request. Each step writes one
audit event and emits `approval.requested` or `approval.decided` in its transaction.

Execution runs inside the transaction that claims the request: the claim, the action's
own writes and the final state commit together. A worker that dies mid-way rolls all of
them back and the request is picked up again; an executor that raises has its writes
rolled back (a savepoint) and the request ends `failed` with the message and a hint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance import outbox, policy
from governance.actors import Actor
from governance.approvals import errors, registry, selectors, steps, windows
from governance.audit import trail as audit
from governance.models import ApprovalRequest, ApprovalState, ApprovalVote, Door, Outcome, VoteDecision
from marketerapi.problems import ApplicationError

logger = logging.getLogger(__name__)

# PRODUCT.md §5: a request expires 72 hours after it was filed.
EXPIRY = timedelta(hours=72)
# An approved request that should have run at once but was not picked up (its kick was
# lost: broker down, process killed after commit) is run by the sweep after this long.
LOST_KICK_GRACE = timedelta(minutes=1)
SCHEDULE_MARK = " — scheduled for "
SUMMARY_MAX = 300


T = TypeVar("T")


@dataclass(frozen=True)
class ActionOutcome(Generic[T]):
    """What a governed action that the environment's policy may hold for approval did: it
    ran now (`result`), or it filed an approval request (`approval`) and runs once that is
    approved. The one outcome type of every such service (publish, rollback, archive, the
    global suppression list, personalization flags)."""

    result: T | None = None
    approval: ApprovalRequest | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        return self.approval is None


def request_or_run(
    *,
    actor: Actor,
    action: str,
    target: Any,
    decision: policy.Decision,
    summary: str,
    change: dict[str, Any],
    run: Callable[[], T],
    fingerprint: str = "",
    pending_detail: str | None = None,
    warnings: Sequence[dict[str, Any]] = (),
) -> ActionOutcome[T]:
    """File an approval request when `decision` (the service's one policy answer) asks for
    one, else run the action now.

    Filing refuses a second request while one is open for the same action and target
    (409 `approval_pending`), then writes the request, its audit event and
    `approval.requested` in one transaction. `run` is the service's own work (its
    transaction, audit event and outbox event); its return value is `ActionOutcome.result`.
    """
    if not decision.needs_approval:
        return ActionOutcome(result=run(), warnings=list(warnings))
    with transaction.atomic():
        pending = selectors.open_request_id(action=action, target=target)
        stale: ApprovalRequest | None = None
        if pending is not None:
            stale = _stale_open_request(pending, fingerprint)
            if stale is None:
                label = audit.describe_target(target)[2] or str(target)
                raise errors.ApprovalPending(
                    pending_detail or f"{label!r} waits for approval of this already (request {pending}).",
                    approval_url=f"/api/v1/approvals/{pending}",
                )
        request = approval_request_create(
            actor=actor,
            action=action,
            target=target,
            summary=summary,
            change=change,
            decision=decision,
            fingerprint=fingerprint,
            supersedes=stale,
        )
        if stale is not None:
            _supersede(stale, request)
    return ActionOutcome(approval=request, warnings=list(warnings))


def _stale_open_request(request_id: int, fingerprint: str) -> ApprovalRequest | None:
    """The open request `request_id`, locked, when the target changed since it was filed
    (its fingerprint is not the target's now): a new request replaces it. None otherwise."""
    if not fingerprint:
        return None
    request = ApprovalRequest.objects.select_for_update().get(pk=request_id)
    if not request.target_fingerprint or request.target_fingerprint == fingerprint or request.executed_at:
        return None
    return request


def _supersede(stale: ApprovalRequest, new: ApprovalRequest) -> None:
    """A stale open request, replaced by `new`: cancelled, saying by which. Audited in the
    new request's own event (`supersedes`); `approval.decided` tells subscribers."""
    stale.state = ApprovalState.CANCELLED
    stale.is_stale = True
    stale.decided_at = new.created_at
    stale.result = {
        **(stale.result or {}),
        "superseded_by": new.pk,
        "reason": f"The target changed after this request was filed; request {new.pk} replaces it.",
    }
    stale.save(update_fields=["state", "is_stale", "decided_at", "result"])
    outbox.emit("approval.decided", stale, payload(stale, step="supersede", by=None))


@dataclass
class VoteOutcome:
    """What a vote did, in words a person can act on."""

    request: ApprovalRequest
    message: str
    notices: list[str] = field(default_factory=list)
    transitioned: bool = False


class _Refused(Exception):
    """Carries a refusal out of the locked transaction, so its writes roll back."""

    def __init__(self, error: ApplicationError, audited: bool, stale: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.audited = audited
        self.stale = stale


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _locked(request_id: int) -> ApprovalRequest:
    return ApprovalRequest.objects.select_for_update().select_related("environment", "requester").get(pk=request_id)


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def payload(request: ApprovalRequest, *, step: str, by: str | None = None, received: int | None = None) -> dict:
    """The body of approval.requested / approval.decided events."""
    if received is None:
        received = min(
            request.votes.filter(counts=True, decision=VoteDecision.APPROVE).count() if request.pk else 0,
            request.required,
        )
    return {
        "approval_id": request.pk,
        "step": step,
        "state": request.state,
        "action": request.action,
        "target": {"type": request.target_type, "id": request.target_id, "label": request.target_label},
        "summary": request.summary,
        "requester": _username(request.requester),
        "by": by,
        "required": request.required,
        "received": received,
        "is_stale": request.is_stale,
        "expires_at": request.expires_at.isoformat() if request.expires_at else None,
        "scheduled_for": request.scheduled_for.isoformat() if request.scheduled_for else None,
    }


def approval_refs(request: ApprovalRequest) -> list[dict[str, Any]]:
    """The approvals an executed action rests on, for its audit event."""
    return [
        {
            "approval_request": request.pk,
            "voter": vote.voter.get_username(),
            "voter_id": vote.voter_id,
            "role": vote.role,
            "voted_at": vote.created_at.isoformat(),
        }
        for vote in request.votes.select_related("voter").filter(counts=True, decision=VoteDecision.APPROVE)
    ]


def _with_schedule(summary: str, note: str) -> str:
    base = summary.split(SCHEDULE_MARK)[0]
    suffix = f"{SCHEDULE_MARK}{note}"
    return base[: SUMMARY_MAX - len(suffix)] + suffix


# --- filing ---------------------------------------------------------------------------


def approval_request_create(
    *,
    actor: Actor,
    action: str,
    target: Any,
    summary: str,
    change: dict[str, Any],
    decision: policy.Decision,
    fingerprint: str = "",
    supersedes: ApprovalRequest | None = None,
) -> ApprovalRequest:
    """File an approval request for an action the policy said needs approval.

    Call it in the domain service's transaction, instead of doing the change; answer 202
    with `approval_brief(request)`. `change` is what the executor needs to run the action
    later (put the policy context, e.g. `{"reach": 60000}`, under `"context"`);
    `fingerprint` identifies the target's current state (see registry.fingerprint_of).
    Writes one audit event (the action, outcome `approval_requested`) and emits
    `approval.requested`.
    """
    if not decision.needs_approval:
        raise ValueError(f"the decision for {action!r} does not ask for approval ({decision.outcome})")
    if actor.user is None:
        raise ValueError("approval requests are filed by people; system actors are never asked for approval")
    registry.executor_for(action)  # no executor: fail now, not after people voted
    now = timezone.now()
    target_type, target_id, target_label = audit.describe_target(target)
    steps_wanted = [list(s) for s in (decision.approver_roles or decision.policy.get("steps") or [])]
    snapshot = {**_json(decision.policy), "steps": steps_wanted, "rule": decision.rule, "reasons": decision.reasons}
    with transaction.atomic():
        request = ApprovalRequest.objects.create(
            environment=actor.environment,
            action=action,
            target_type=target_type,
            target_id=target_id,
            target_label=target_label,
            summary=summary[:SUMMARY_MAX],
            change=_json(change),
            target_fingerprint=fingerprint or "",
            policy=snapshot,
            requester=actor.user,
            requester_token=actor.token,
            requester_door=actor.door,
            required=len(steps_wanted) or max(decision.required_approvals, 1),
            created_at=now,
            expires_at=now + EXPIRY,
        )
        outbox.emit("approval.requested", request, payload(request, step="request", received=0))
        audit.record(
            actor,
            action,
            target,
            outcome=Outcome.APPROVAL_REQUESTED,
            decision=decision,
            changes={
                "approval_request": request.pk,
                "summary": request.summary,
                "change": request.change,
                **({"supersedes": supersedes.pk} if supersedes is not None else {}),
            },
            approval_refs=[{"approval_request": request.pk, "state": request.state}],
        )
    return request


def approval_brief(request: ApprovalRequest, received: int = 0) -> dict[str, Any]:
    """The 202 body of a domain endpoint that filed a request: `{"approval": {...}}`."""
    return {
        "approval": {
            "id": request.pk,
            "state": request.state,
            "required": request.required,
            "received": received,
            "summary": request.summary,
            "expires_at": request.expires_at.isoformat(),
            "url": f"/api/v1/approvals/{request.pk}",
        },
        "detail": " ".join((request.policy or {}).get("reasons") or []),
        "hint": f"It runs once {steps.describe_steps(selectors.request_steps(request))} approve it, "
        "within 72 hours; follow it at the url.",
    }


# --- votes ----------------------------------------------------------------------------


def approval_approve(
    *, actor: Actor, request: ApprovalRequest, comment: str = "", now: datetime | None = None
) -> VoteOutcome:
    """Approve: the vote fills an open step; the last one approves the request and runs it
    (now, or at the next change window for publishes and activations)."""
    return _vote(actor, request, VoteDecision.APPROVE, comment or "", now or timezone.now())


def approval_reject(
    *, actor: Actor, request: ApprovalRequest, comment: str, now: datetime | None = None
) -> VoteOutcome:
    """Reject with a comment: any rejection ends the request."""
    if not (comment or "").strip():
        raise errors.CommentRequired(
            "Say why you reject the request, so the requester knows what to change.",
            errors=[
                {
                    "pointer": "/comment",
                    "code": "required",
                    "message": "A rejection needs a comment.",
                    "hint": "Send a short reason.",
                }
            ],
        )
    return _vote(actor, request, VoteDecision.REJECT, comment.strip(), now or timezone.now())


def _expire_if_due(request_id: int, now: datetime) -> bool:
    """Expire a pending request whose time ran out (its own transaction, so it stands)."""
    with transaction.atomic():
        locked = _locked(request_id)
        if locked.state != ApprovalState.PENDING or locked.expires_at > now:
            return False
        _expire(locked, now)
    return True


def _vote(actor: Actor, request: ApprovalRequest, decision_value: str, comment: str, now: datetime) -> VoteOutcome:
    step_name = "approve" if decision_value == VoteDecision.APPROVE else "reject"
    audit_action = f"approval.{step_name}"
    decision = policy.require(actor, "approval.vote", request)
    if _expire_if_due(request.pk, now):
        raise errors.ApprovalExpired(f"Request {request.pk} expired at {request.expires_at:%Y-%m-%d %H:%M} UTC.")
    try:
        with transaction.atomic():
            locked = _locked(request.pk)
            return _vote_locked(actor, locked, decision, decision_value, step_name, audit_action, comment, now)
    except _Refused as refused:
        if refused.audited:
            # Refusals to vote (own request, wrong role, a second vote) are recorded like
            # any denied attempt, in their own transaction so they survive the refusal.
            with transaction.atomic():
                if refused.stale:
                    ApprovalRequest.objects.filter(pk=request.pk).update(is_stale=True)
                audit.record(
                    actor,
                    audit_action,
                    request,
                    outcome=Outcome.DENIED,
                    reasons=[refused.error.detail],
                    changes={"code": refused.error.code},
                )
        raise refused.error from None


def _vote_locked(
    actor: Actor,
    request: ApprovalRequest,
    decision: policy.Decision,
    decision_value: str,
    step_name: str,
    audit_action: str,
    comment: str,
    now: datetime,
) -> VoteOutcome:
    notices: list[str] = []
    if request.state == ApprovalState.PENDING:
        if decision_value == VoteDecision.APPROVE:
            # An approval is of what the request shows: a changed target is refused, never
            # approved in its new state (issue 12: the vote published the edited rules).
            target = registry.load_target(request)
            current = registry.current_fingerprint(request, target)
            if current is not None and current != request.target_fingerprint:
                raise _Refused(
                    selectors.stale_refusal(request, registry.what_changed(request, target)), audited=True, stale=True
                )
        stale_notice = _mark_stale_if_changed(request)
        if stale_notice:
            notices.append(stale_notice)
    votes = list(request.votes.select_related("voter").order_by("id"))
    roles = selectors.roles_by_user(v.voter_id for v in votes)
    refusal = selectors.vote_refusal(actor, request, votes, roles)
    if refusal is not None:
        raise _Refused(refusal, audited=not isinstance(refusal, errors.ApprovalClosed))

    user = actor.user
    mine = next((v for v in votes if v.voter_id == user.pk), None)  # type: ignore[union-attr]
    usable = steps.usable_roles(actor.roles, request.action)
    if mine is None:
        mine = ApprovalVote(request=request, voter=user)
        votes.append(mine)
    # else: an earlier vote that stopped counting when the target changed; it is given anew.
    mine.decision = decision_value
    mine.comment = comment
    mine.counts = True
    mine.created_at = now
    roles[user.pk] = set(actor.roles)  # type: ignore[union-attr]

    before_state = request.state
    counting = selectors.counting_approvals(votes)
    tally = steps.tally(selectors.request_steps(request), [selectors.voter_roles(request, v, roles) for v in counting])
    # The role each counting vote stands for, as matched now (a later vote may move an
    # earlier admin-and-approver from the approver step to the admin step).
    for step_index, voter_index in enumerate(tally.filled):
        if voter_index is not None:
            vote = counting[voter_index]
            vote_roles = selectors.voter_roles(request, vote, roles)
            vote.role = steps.role_for(tally.steps[step_index], vote_roles)
    if decision_value == VoteDecision.REJECT:
        mine.role = next((r for step in tally.open_steps for r in step if r in usable), "")
    if mine.pk is None:
        mine.save()
    else:
        mine.save(update_fields=["decision", "comment", "counts", "created_at", "role"])
    for vote in counting:
        if vote is not mine and vote.pk is not None:
            vote.save(update_fields=["role"])

    received = tally.received
    update_fields = ["state", "decided_at", "is_stale", "target_fingerprint"]
    if decision_value == VoteDecision.REJECT:
        request.state = ApprovalState.REJECTED
        request.decided_at = now
        message = f"Rejected: request {request.pk} is closed and will not run. The requester sees your comment."
    elif tally.complete:
        request.state = ApprovalState.APPROVED
        request.decided_at = now
        later = windows.run_at(request.environment, request.action, now)
        if later is not None:
            when = windows.describe_moment(request.environment, later)
            request.scheduled_for = later
            request.summary = _with_schedule(request.summary, f"{when} (next change window)")
            update_fields += ["scheduled_for", "summary"]
            message = (
                f"Approved ({received} of {request.required}). In {request.environment.slug}, {request.action} runs "
                f"only inside change windows ({windows.describe_windows(request.environment)}); it is scheduled "
                f"for {when}, the next opening."
            )
        else:
            message = f"Approved ({received} of {request.required}); the action runs now."
            request_id = request.pk
            transaction.on_commit(lambda: _kick_execution(request_id), robust=True)
    else:
        message = (
            f"Approved ({received} of {request.required}). Still needed: {steps.describe_steps(tally.open_steps)}."
        )
    request.save(update_fields=update_fields)

    outbox.emit(
        "approval.decided",
        request,
        payload(request, step=step_name, by=actor.label, received=received),
    )
    audit.record(
        actor,
        audit_action,
        request,
        decision=decision,
        changes={
            "vote": decision_value,
            "comment": comment,
            "role": mine.role,
            "before": {"state": before_state},
            "after": {
                "state": request.state,
                "received": received,
                "required": request.required,
                "scheduled_for": request.scheduled_for,
            },
            "stale": bool(notices),
        },
        approval_refs=[{"approval_request": request.pk, "vote": decision_value}],
    )
    return VoteOutcome(request, message, notices, transitioned=request.state != before_state)


def _mark_stale_if_changed(request: ApprovalRequest) -> str | None:
    """When the target changed since the request was filed (or last marked), earlier votes
    stop counting and the request is marked stale; the vote being cast counts for the new state."""
    target = registry.load_target(request)
    current = registry.current_fingerprint(request, target)
    if current is None or current == request.target_fingerprint:
        return None
    dropped = list(request.votes.filter(counts=True))
    for vote in dropped:
        vote.counts = False
        vote.save(update_fields=["counts"])
    request.is_stale = True
    request.target_fingerprint = current
    label = request.target_label or "the target"
    return (
        f"{label} changed after the request was filed: the request is stale and "
        f"{len(dropped)} earlier approval(s) no longer count; it needs {request.required} approval(s) "
        "of the current version."
    )


def _kick_execution(request_id: int) -> None:
    from governance.tasks import approval_execute_task

    try:
        approval_execute_task.delay(request_id)
    except Exception:
        # The approval stands; the periodic sweep runs the request (LOST_KICK_GRACE).
        logger.warning("could not enqueue approval %s; the sweep will run it", request_id, exc_info=True)


# --- cancel and expire ----------------------------------------------------------------


def approval_cancel(*, actor: Actor, request: ApprovalRequest, now: datetime | None = None) -> ApprovalRequest:
    """The requester withdraws a request that is pending, or approved and not yet running."""
    now = now or timezone.now()
    decision = policy.require(actor, "approval.cancel", request)
    try:
        with transaction.atomic():
            locked = _locked(request.pk)
            if actor.user is None or locked.requester_id != actor.user.pk:
                raise _Refused(
                    errors.NotRequester(
                        f"Request {locked.pk} was filed by {locked.requester.get_username()}; only they may cancel it."
                    ),
                    audited=True,
                )
            if locked.state not in (ApprovalState.PENDING, ApprovalState.APPROVED) or locked.executed_at is not None:
                raise _Refused(
                    errors.ApprovalClosed(f"Request {locked.pk} is {locked.state}; there is nothing to cancel."),
                    audited=False,
                )
            before = locked.state
            locked.state = ApprovalState.CANCELLED
            locked.decided_at = now
            locked.save(update_fields=["state", "decided_at"])
            outbox.emit("approval.decided", locked, payload(locked, step="cancel", by=actor.label))
            audit.record(
                actor,
                "approval.cancel",
                locked,
                decision=decision,
                changes={"before": {"state": before}, "after": {"state": locked.state}},
                approval_refs=[{"approval_request": locked.pk}],
            )
            return locked
    except _Refused as refused:
        if refused.audited:
            with transaction.atomic():
                audit.record(
                    actor,
                    "approval.cancel",
                    request,
                    outcome=Outcome.DENIED,
                    reasons=[refused.error.detail],
                    changes={"code": refused.error.code},
                )
        raise refused.error from None


def _expire(request: ApprovalRequest, now: datetime) -> None:
    request.state = ApprovalState.EXPIRED
    request.decided_at = now
    request.save(update_fields=["state", "decided_at"])
    actor = Actor.system(request.environment, door=Door.TASK, request_id=f"approval-{request.pk}")
    outbox.emit("approval.decided", request, payload(request, step="expire", by=actor.label))
    audit.record(
        actor,
        "approval.expire",
        request,
        reasons=[f"Not decided within {int(EXPIRY.total_seconds() // 3600)} hours of being filed."],
        changes={"before": {"state": ApprovalState.PENDING}, "after": {"state": ApprovalState.EXPIRED}},
        approval_refs=[{"approval_request": request.pk}],
    )


def approvals_expire(*, now: datetime | None = None) -> int:
    """Expire every pending request older than 72 hours; returns how many."""
    now = now or timezone.now()
    due = list(
        ApprovalRequest.objects.filter(state=ApprovalState.PENDING, expires_at__lte=now).values_list("pk", flat=True)
    )
    return sum(1 for request_id in due if _expire_if_due(request_id, now))


# --- execution ------------------------------------------------------------------------


def approvals_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Approved requests that may run now: their window opened, or their kick was lost."""
    now = now or timezone.now()
    return list(
        ApprovalRequest.objects.filter(state=ApprovalState.APPROVED, executed_at__isnull=True)
        .filter(Q(scheduled_for__lte=now) | Q(scheduled_for__isnull=True, decided_at__lte=now - LOST_KICK_GRACE))
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )


def _error(code: str, message: str, hint: str) -> dict[str, str]:
    return {"code": code, "message": message, "hint": hint}


def approval_execute(request_id: int, *, now: datetime | None = None) -> ApprovalRequest | None:
    """Run an approved request's action once, with the requester as actor (door `task`).

    Claims the request with a conditional UPDATE; None when another worker has it, it is
    not approved (any more), or its window has not opened.
    """
    now = now or timezone.now()
    with transaction.atomic():
        claimed = (
            ApprovalRequest.objects.filter(pk=request_id, state=ApprovalState.APPROVED, executed_at__isnull=True)
            .filter(Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now))
            .update(executed_at=now)
        )
        if claimed != 1:
            return None
        request = ApprovalRequest.objects.select_related("environment", "requester").get(pk=request_id)

        # A run picked up late (a worker was down) must still land inside a window.
        later = windows.run_at(request.environment, request.action, now)
        if later is not None:
            request.executed_at = None
            request.scheduled_for = later
            note = f"{windows.describe_moment(request.environment, later)} (next change window)"
            request.summary = _with_schedule(request.summary, note)
            request.save(update_fields=["executed_at", "scheduled_for", "summary"])
            return request

        actor = Actor(
            user=request.requester, environment=request.environment, door=Door.TASK, request_id=f"approval-{request.pk}"
        )
        refs = approval_refs(request)
        result, error = _run(request, actor, refs)
        request.state = ApprovalState.FAILED if error else ApprovalState.EXECUTED
        request.result = {"error": error} if error else _json(result or {})
        request.save(update_fields=["state", "executed_at", "result"])
        outbox.emit("approval.decided", request, payload(request, step="execute", by=actor.label))
        audit.record(
            actor,
            "approval.execute",
            request,
            outcome=Outcome.FAILED if error else Outcome.ALLOWED,
            reasons=[error["message"]]
            if error
            else [f"Approved by {', '.join(r['voter'] for r in refs) or 'policy'}."],
            changes={"after": {"state": request.state, "result": request.result}},
            approval_refs=refs,
        )
    return request


def _run(request: ApprovalRequest, actor: Actor, refs: list[dict[str, Any]]) -> tuple[Any, dict[str, str] | None]:
    try:
        spec = registry.executor_for(request.action)
    except registry.ExecutorMissing as exc:
        return None, _error(
            "executor_missing", str(exc), "A platform engineer must deploy the code that runs this action."
        )
    target = registry.load_target(request)
    if target is None and "." in request.target_type and request.target_id:
        return None, _error(
            "target_missing",
            f"{request.target_label or request.target_type} no longer exists.",
            "Nothing ran. If the action is still wanted, file it again.",
        )
    current = registry.current_fingerprint(request, target)
    if current is not None and current != request.target_fingerprint:
        return None, _error(
            "target_changed",
            f"{request.target_label or 'The target'} changed after the request was approved.",
            "Nothing ran: the approvers approved another version. File the action again so they see this one.",
        )
    execution = registry.Execution(
        request=request, actor=actor, target=target, change=request.change, approval_refs=refs
    )
    try:
        # A savepoint: an executor that fails leaves nothing half-done.
        with transaction.atomic():
            return spec.run(execution), None
    except ApplicationError as exc:
        return None, _error(exc.code, exc.detail or exc.title, exc.hint)
    except Exception as exc:
        logger.exception("approval %s: the executor of %s failed", request.pk, request.action)
        return None, _error(
            "execution_failed",
            f"{type(exc).__name__}: {exc}",
            "Nothing ran. Fix the cause named here (or ask a platform engineer, quoting the request id), "
            "then file the action again.",
        )
