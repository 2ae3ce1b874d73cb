"""Reads of approval requests, scoped to the actor's environment, and who may vote.

Everyone in an environment may see its requests (approvers must see what they judge,
requesters what they wait for); only eligible people may vote. A request of another
environment is a 404, never a 403, so ids do not leak.

A person's inboxes (the portal's home and approvals pages, the admin dashboard) look across
every environment they may act in (`acting_environments`, then `approval_list(environments=…)`):
an approver working in the sandbox must not miss what waits in production. The policy is asked per
environment, and a request is still read and voted on in its own environment only
(`approval_get`); `approval_elsewhere` says where a request of another one lives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from governance import policy
from governance.actors import Actor
from governance.approvals import errors, registry, steps
from governance.models import ApprovalRequest, ApprovalState, ApprovalVote, Environment, VoteDecision
from governance.roles import ROLE_NAMES
from marketerapi.problems import ApplicationError, NotFound

OPEN_STATES = frozenset({ApprovalState.PENDING})


def _votes_prefetch() -> Prefetch:
    return Prefetch("votes", queryset=ApprovalVote.objects.select_related("voter").order_by("id"))


def approval_queryset(environment: Any) -> QuerySet[ApprovalRequest]:
    """Requests of an environment (or of a list of them), with what their pages read."""
    where = {"environment__in": environment} if isinstance(environment, list | tuple) else {"environment": environment}
    return (
        ApprovalRequest.objects.filter(**where)
        .select_related("requester", "environment")
        .prefetch_related(_votes_prefetch())
    )


def actor_in(actor: Actor, environment: Environment) -> Actor:
    """The same person acting in another environment (their roles are not looked up again)."""
    if environment.pk == actor.environment.pk:
        return actor
    return Actor(
        user=actor.user,
        environment=environment,
        door=actor.door,
        ip=actor.ip,
        request_id=actor.request_id,
        _roles=actor.roles,
    )


def acting_environments(actor: Actor) -> list[Environment]:
    """The environments whose requests the person may see and vote on, in a fixed order:
    each where the policy allows them `approval.view` — asked per environment, since a role
    may hold only in a sandbox. A token, or the system, acts in its own environment only.
    One query (the environments), whatever their number."""
    if actor.token is not None or actor.user is None:
        return [actor.environment]
    return [
        environment
        for environment in Environment.objects.order_by("id")
        if policy.decide(actor_in(actor, environment), "approval.view").allowed
    ]


def approval_list(
    *,
    actor: Actor,
    state: str | None = None,
    mine: bool = False,
    waiting_for_me: bool = False,
    environments: Sequence[Environment] | None = None,
) -> QuerySet[ApprovalRequest]:
    """Requests of the actor's environment, newest first; `mine`: filed by the actor;
    `waiting_for_me`: pending requests the actor may vote on now; `environments`: of these
    instead (`acting_environments(actor)`: every one the person may act in), the policy asked
    in each. A fixed number of queries whatever the number of environments or requests."""
    places = list(environments) if environments is not None else [actor.environment]
    for environment in places or [actor.environment]:  # none at all: refused here, with why
        policy.require(actor_in(actor, environment), "approval.view")
    requests = approval_queryset(places)
    if state:
        requests = requests.filter(state=state)
    if mine:
        requests = requests.filter(requester=actor.user) if actor.user is not None else requests.none()
    if waiting_for_me:
        requests = requests.filter(pk__in=waiting_for(actor, places))
    return requests


def approval_elsewhere(*, actor: Actor, approval_id: int) -> ApprovalRequest | None:
    """The request `approval_id` when it lives in another environment the person may act in
    (to say where it is and offer to switch there), else None: one query more."""
    others = [env for env in acting_environments(actor) if env.pk != actor.environment.pk]
    if not others:
        return None
    return approval_queryset(others).filter(pk=approval_id).first()


def open_request_id(*, action: str, target: Any) -> int | None:
    """The id of the request for `action` on `target` that is still open (pending, or
    approved and not run yet), or None: while there is one, a second is refused."""
    from governance.audit import trail as audit

    target_type, target_id, _ = audit.describe_target(target)
    environment_id = getattr(target, "environment_id", None)
    requests = ApprovalRequest.objects.filter(
        action=action,
        target_type=target_type,
        target_id=target_id,
        state__in=[ApprovalState.PENDING, ApprovalState.APPROVED],
    )
    if environment_id is not None:
        requests = requests.filter(environment_id=environment_id)
    return requests.values_list("pk", flat=True).first()


def approval_get(*, actor: Actor, approval_id: int) -> ApprovalRequest:
    policy.require(actor, "approval.view")
    request = approval_queryset(actor.environment).filter(pk=approval_id).first()
    if request is None:
        raise NotFound(
            f"No approval request {approval_id} in {actor.environment.slug}.",
            hint="Check the id, and that your token belongs to the environment the request was filed in.",
            code="approval_not_found",
        )
    return request


def waiting_for(actor: Actor, environments: Sequence[Environment] | None = None) -> list[int]:
    """Ids of the pending requests the actor may vote on, in the actor's environment (or in
    `environments`): a fixed number of queries whatever the number of requests (pending
    requests live at most 72 hours) or environments."""
    if actor.user is None:
        return []
    pending = list(
        ApprovalRequest.objects.filter(
            environment__in=list(environments) if environments is not None else [actor.environment],
            state=ApprovalState.PENDING,
            expires_at__gt=timezone.now(),
        )
        .exclude(requester=actor.user)
        .prefetch_related(_votes_prefetch())
    )
    roles = roles_by_user(v.voter_id for r in pending for v in r.votes.all())
    return [r.pk for r in pending if vote_refusal(actor, r, list(r.votes.all()), roles) is None]


def roles_by_user(user_ids: Iterable[int]) -> dict[int, set[str]]:
    """The role names each user holds now, in one query."""
    ids = set(user_ids)
    out: dict[int, set[str]] = {uid: set() for uid in ids}
    if not ids:
        return out
    for user_id, name in Group.objects.filter(name__in=ROLE_NAMES, user__in=ids).values_list("user", "name"):
        out[user_id].add(name)
    return out


def counting_approvals(votes: Sequence[ApprovalVote]) -> list[ApprovalVote]:
    return [v for v in votes if v.counts and v.decision == VoteDecision.APPROVE]


def request_steps(request: ApprovalRequest) -> list[list[str]]:
    policy_steps = (request.policy or {}).get("steps") or []
    return [list(step) for step in policy_steps] or [["approver"]] * max(request.required, 1)


def voter_roles(request: ApprovalRequest, vote: ApprovalVote, roles: dict[int, set[str]]) -> set[str]:
    """The roles an earlier vote may count for: those its voter holds now, plus the one it
    was recorded for (a vote given in good standing keeps counting)."""
    held = set(roles.get(vote.voter_id, set()))
    if vote.role:
        held.add(vote.role)
    return steps.usable_roles(held, request.action)


def tally_of(
    request: ApprovalRequest, votes: Sequence[ApprovalVote], roles: dict[int, set[str]], extra: set[str] | None = None
) -> steps.Tally:
    voters = [voter_roles(request, v, roles) for v in counting_approvals(votes)]
    if extra is not None:
        voters.append(extra)
    return steps.tally(request_steps(request), voters)


def received_of(request: ApprovalRequest) -> int:
    """Counting approvals, from prefetched votes (no query)."""
    return min(len(counting_approvals(list(request.votes.all()))), request.required)


def vote_refusal(
    actor: Actor, request: ApprovalRequest, votes: Sequence[ApprovalVote], roles: dict[int, set[str]]
) -> ApplicationError | None:
    """Why the actor may not vote on the request now, or None when they may."""
    if request.state != ApprovalState.PENDING:
        return errors.ApprovalClosed(f"Request {request.pk} is {request.state}; votes are taken while it is pending.")
    user = actor.user
    if user is None:
        return errors.NotEligible("Votes come from people; a system actor cannot vote.")
    if request.requester_id == user.pk:
        return errors.SelfApproval(
            f"You filed request {request.pk}; no one approves their own request (PRODUCT.md §5)."
        )
    mine = next((v for v in votes if v.voter_id == user.pk), None)
    if mine is not None and mine.counts:
        return errors.AlreadyVoted(
            f"You already voted ({mine.decision}) on request {request.pk} on {mine.created_at:%Y-%m-%d %H:%M} UTC; "
            "one person gives one vote."
        )
    others = [v for v in votes if v.voter_id != user.pk]
    before = tally_of(request, others, roles)
    usable = steps.usable_roles(actor.roles, request.action)
    after = tally_of(request, others, roles, extra=usable)
    if after.received > before.received:
        return None
    held = ", ".join(actor.roles) or "no role"
    detail = f"Request {request.pk} still needs {steps.describe_steps(before.open_steps)}; your roles ({held}) "
    if set(actor.roles) & {r for step in before.steps for r in step} and not (usable & _open_roles(before)):
        detail += "fill only steps that others have already filled."
    else:
        detail += "fill none of the open steps."
    if "compliance_reviewer" in actor.roles and not request.action.startswith(steps.EXPORT_ACTION_PREFIX):
        detail += " Compliance reviewers vote on exports only."
    return errors.NotEligible(
        detail,
        hint=f"Ask {steps.describe_steps(before.open_steps)} to vote; the request lists who voted so far.",
    )


def _open_roles(tally: steps.Tally) -> set[str]:
    return {role for step in tally.open_steps for role in step}


@dataclass(frozen=True)
class StepStanding:
    roles: list[str]
    filled_by: ApprovalVote | None


@dataclass(frozen=True)
class Standing:
    """Where a request stands for one actor: each step and the vote filling it, the votes,
    whether the target changed under it, and whether the actor may vote or cancel (and why
    not). What `GET /approvals/{id}` and the portal's request page both show."""

    steps: list[StepStanding]
    votes: list[ApprovalVote]
    is_stale: bool
    stale_reason: str | None
    refusal: ApplicationError | None
    may_cancel: bool
    # What changed in the target since the request was filed (a stale request): field, requested, now.
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def may_vote(self) -> bool:
        return self.refusal is None

    @property
    def open_steps(self) -> list[list[str]]:
        return [step.roles for step in self.steps if step.filled_by is None]


def approval_standing(*, request: ApprovalRequest, actor: Actor) -> Standing:
    """The request's standing, from its prefetched votes (approval_get / approval_list):
    one query for the voters' roles, one or two to check a pending request's target."""
    votes = list(request.votes.all())
    roles = roles_by_user(v.voter_id for v in votes)
    tally = tally_of(request, votes, roles)
    counting = counting_approvals(votes)
    is_stale = request.is_stale
    stale_reason = None
    changes: list[dict[str, Any]] = []
    refusal = vote_refusal(actor, request, votes, roles)
    if request.state in (ApprovalState.PENDING, ApprovalState.APPROVED) and request.executed_at is None:
        target = registry.load_target(request)
        current = registry.current_fingerprint(request, target)
        if current is not None and current != request.target_fingerprint:
            is_stale = True
            changes = registry.what_changed(request, target)
            stale_reason = stale_words(request)
            if refusal is None:
                refusal = stale_refusal(request, changes)
    if stale_reason is None and request.is_stale:
        stale_reason = "The target changed after the request was filed; earlier votes no longer count."
    may_cancel = (
        actor.user is not None
        and request.requester_id == actor.user.pk
        and request.state in (ApprovalState.PENDING, ApprovalState.APPROVED)
        and request.executed_at is None
    )
    return Standing(
        steps=[
            StepStanding(list(step), counting[voter] if voter is not None else None)
            for step, voter in zip(tally.steps, tally.filled, strict=True)
        ],
        votes=votes,
        is_stale=is_stale,
        stale_reason=stale_reason,
        refusal=refusal,
        may_cancel=may_cancel,
        changes=changes,
    )


def stale_words(request: ApprovalRequest) -> str:
    return (
        f"{request.target_label or 'The target'} changed after the request was filed: what it shows is no longer "
        "what would run, so it cannot be approved. The requester must request it again; the new request replaces "
        "this one."
    )


def stale_refusal(request: ApprovalRequest, changes: list[dict[str, Any]]) -> errors.ApprovalStale:
    """409 `approval_stale`: a vote on a request whose target changed since it was filed."""
    fields = ", ".join(change["field"] for change in changes)
    return errors.ApprovalStale(
        stale_words(request) + (f" Changed: {fields}." if fields else ""),
        changes=changes,
    )
