"""Which approver fills which step of a policy.

A policy's `steps` asks for one person per step, each holding one of the step's roles:
`[["approver"], ["developer", "admin"]]` is one approver and one developer-or-admin, two
distinct people. A person holding several roles fills one step only. Votes are matched to
steps as a bipartite matching (augmenting paths), so the order in which people vote never
matters: an admin who is also an approver and votes first does not block an approver who
votes second — the admin moves to the developer-or-admin step. A new vote never
un-counts an earlier one (augmenting paths keep every matched voter matched).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from governance.roles import COMPLIANCE_REVIEWER

# Compliance reviewers judge exports (PRODUCT.md §4): their role counts only there.
EXPORT_ACTION_PREFIX = "export."

_ARTICLES = {"admin": "an admin", "approver": "an approver", "analyst": "an analyst"}


def usable_roles(roles: Iterable[str], action: str) -> set[str]:
    """The roles a person may vote with on `action`."""
    usable = set(roles)
    if not action.startswith(EXPORT_ACTION_PREFIX):
        usable.discard(COMPLIANCE_REVIEWER)
    return usable


def assign(steps: Sequence[Sequence[str]], voters: Sequence[set[str]]) -> list[int | None]:
    """For each step, the index of the voter filling it (None: open), as a maximum matching."""
    filled: list[int | None] = [None] * len(steps)

    def place(voter: int, seen: set[int]) -> bool:
        for step, roles in enumerate(steps):
            if step in seen or not voters[voter].intersection(roles):
                continue
            seen.add(step)
            holder = filled[step]
            if holder is None or place(holder, seen):
                filled[step] = voter
                return True
        return False

    for voter in range(len(voters)):
        place(voter, set())
    return filled


def role_for(step_roles: Sequence[str], voter_roles: set[str]) -> str:
    """The role a vote counts for: the first of the step's roles the voter holds."""
    return next((role for role in step_roles if role in voter_roles), "")


@dataclass(frozen=True)
class Tally:
    """The state of a request's counting approvals."""

    steps: list[list[str]]
    filled: list[int | None]

    @property
    def received(self) -> int:
        return sum(1 for voter in self.filled if voter is not None)

    @property
    def required(self) -> int:
        return len(self.steps)

    @property
    def complete(self) -> bool:
        return self.received >= self.required

    @property
    def open_steps(self) -> list[list[str]]:
        return [self.steps[i] for i, voter in enumerate(self.filled) if voter is None]


def tally(steps: Sequence[Sequence[str]], voters: Sequence[set[str]]) -> Tally:
    normalised = [list(step) for step in steps]
    return Tally(normalised, assign(normalised, voters))


def describe_step(roles: Sequence[str]) -> str:
    """["developer", "admin"] → "a developer or admin"."""
    if not roles:
        return "anyone"
    names = [r.replace("_", " ") for r in roles]
    first = _ARTICLES.get(roles[0], f"a {names[0]}")
    return " or ".join([first, *names[1:]])


def describe_steps(steps: Sequence[Sequence[str]]) -> str:
    """[["approver"], ["developer", "admin"]] → "an approver and a developer or admin"."""
    parts = [describe_step(step) for step in steps]
    if len(parts) <= 1:
        return parts[0] if parts else "nobody"
    return ", ".join(parts[:-1]) + " and " + parts[-1]
