"""Object permissions (django-guardian) for owned objects: audiences and campaigns.

Everyone in an environment may view them; changing needs the owning team, a share of
`change` to the user or one of their groups, or the admin role (checked by the policy).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.db.models import Model
from guardian.shortcuts import assign_perm, get_perms, remove_perm

SHARE_LEVELS = ("view", "change")


def _codename(obj: Any, level: str) -> str:
    return f"{level}_{obj._meta.model_name}"


def can_change(user: User | None, obj: Model) -> bool:
    if user is None:
        return False
    team_id = getattr(obj, "owner_team_id", None)
    if team_id is not None and user.groups.filter(pk=team_id).exists():
        return True
    return _codename(obj, "change") in get_perms(user, obj)


def share(obj: Any, grantee: Any, level: str) -> None:
    """Grant `level` (view or change) on obj to a user or a group; change implies view."""
    if level not in SHARE_LEVELS:
        raise ValueError(f"share level must be one of {SHARE_LEVELS}")
    assign_perm(_codename(obj, "view"), grantee, obj)
    if level == "change":
        assign_perm(_codename(obj, "change"), grantee, obj)


def unshare(obj: Any, grantee: Any) -> None:
    for level in SHARE_LEVELS:
        remove_perm(_codename(obj, level), grantee, obj)


def teams_of(user: User) -> list[Group]:
    from governance.roles import ROLE_NAMES

    return list(user.groups.exclude(name__in=ROLE_NAMES))
