"""The validators of configuration values, shared by the services and the admin forms, so
a form refuses a bad value on its field with the same sentence the service would raise.
Each returns the value (normalized) or raises InvalidConfig.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from governance import policy
from governance.approvals.windows import InvalidChangeWindows, parse_windows
from governance.configuration.errors import InvalidConfig
from governance.configuration.selectors import approval_actions
from governance.roles import ROLE_NAMES

_ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def check_time_zone(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidConfig('The time zone is empty; use an IANA name such as "Europe/London" or "UTC".')
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidConfig(
            f'{name!r} is not a time zone; use an IANA name such as "Europe/London", "America/New_York" or "UTC".'
        ) from None
    return name


def check_change_windows(raw: Any) -> Any:
    """Days 0–6 (0 = Monday), "HH:MM" start before end; empty means any time."""
    try:
        parse_windows(raw)
    except InvalidChangeWindows as exc:
        raise InvalidConfig(f'{exc} Example: [{{"days": [0, 1, 2, 3], "start": "09:00", "end": "17:00"}}].') from None
    return raw if raw not in (None, "") else []


def check_steps(steps: Any) -> list[list[str]]:
    """A list with one non-empty list of role names per approval."""
    example = 'e.g. [["approver"], ["developer", "admin"]] asks for an approver and then a developer or admin'
    if not isinstance(steps, list) or not steps:
        raise InvalidConfig(f"Steps must be a list with one list of role names per approval ({example}).")
    for index, step in enumerate(steps, start=1):
        if not isinstance(step, list) or not step:
            raise InvalidConfig(f"Step {index} must be a non-empty list of role names ({example}).")
        unknown = [role for role in step if role not in ROLE_NAMES]
        if unknown:
            raise InvalidConfig(
                f"Step {index} names {', '.join(repr(r) for r in unknown)}, which is not a role; "
                f"use any of: {', '.join(ROLE_NAMES)}."
            )
        if len(set(step)) != len(step):
            raise InvalidConfig(f"Step {index} names a role twice.")
    return [list(step) for step in steps]


def check_approval_action(action: Any) -> str:
    known = approval_actions()
    if action in known:
        return action
    spec = policy.ACTIONS.get(action)
    if spec is not None:
        raise InvalidConfig(f"{action!r} never asks for approval, so a policy for it would do nothing.")
    raise InvalidConfig(f"{action!r} is not an action that can ask for approval; use one of: {', '.join(known)}.")


def check_condition(metric: str, threshold: int | None) -> None:
    if bool(metric) != (threshold is not None):
        raise InvalidConfig(
            "Give both a metric and a threshold (the policy applies when the metric exceeds it), or neither "
            "(the policy always applies)."
        )


def check_quota_subject(role: str, user: Any, token: Any) -> None:
    """Exactly one of role, user or token, or none (the default for everyone)."""
    chosen = [name for name, value in (("role", role), ("user", user), ("token", token)) if value]
    if len(chosen) > 1:
        raise InvalidConfig(
            f"A quota policy applies to one role, one user or one token, or to everyone; this one names "
            f"{' and '.join(chosen)}. Keep one of them (or none for the default)."
        )
    if role and role not in ROLE_NAMES:
        raise InvalidConfig(f"{role!r} is not a role; use any of: {', '.join(ROLE_NAMES)}.")


def check_action_name(action: Any) -> str:
    if not isinstance(action, str) or not _ACTION_NAME.match(action):
        raise InvalidConfig(f"{action!r} is not an action name; write it as entity.verb, e.g. export.create.")
    return action
