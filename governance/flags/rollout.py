"""Who has a flag: the one evaluation, and what a change of its settings does to that.

A flag is on for a user when, in this order: `everyone` is set (yes or no decides alone);
the user acts in a sandbox and the flag's metadata says `on_in_sandbox` (the product's
capability flags: a sandbox has every capability, for everyone); the user is a superuser
(`superusers`, on by default in waffle), staff (`staff`) or signed in (`authenticated`);
the user is listed in `users` or is in one of `groups` (a pilot group); or the user falls
in the `percent` rollout. The rollout bucket is a hash of the flag's name and the user's
id: stable, so a person stays in as the percentage grows, and independent per flag, so
the same 10 % of people are not the guinea pigs of every flag.
Waffle's `languages`, `testing` and `rollout` modes are not used by the API.

`flag_snapshot` is what decides who has a flag, as JSON; `narrows` says whether a change
of it can switch the flag off for someone who has it now (what needs approvals for a
personalization flag).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from waffle.models import Flag


def rollout_bucket(flag_name: str, user_id: int) -> int:
    """0–999: the user's place in the flag's percentage rollout (stable, per flag)."""
    digest = hashlib.sha256(f"{flag_name}:{user_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 1000


@dataclass(frozen=True)
class FlagState:
    active: bool
    reason: str


def evaluate(
    flag: Flag,
    user: User | AnonymousUser | None,
    *,
    user_group_ids: set[int] | None = None,
    flag_group_ids: Iterable[int] | None = None,
    flag_user_ids: Iterable[int] | None = None,
    sandbox: bool = False,
) -> FlagState:
    """Whether `flag` is on for `user`, and why. Pass the id sets when you have them
    (prefetched); otherwise waffle's cached sets and one query for the user's groups.
    `sandbox`: the user acts in a sandbox environment (then a flag `on_in_sandbox` is on)."""
    if flag.pk is None:
        return FlagState(False, "off: no such flag")
    if flag.everyone is True:
        return FlagState(True, "on for everyone")
    if flag.everyone is False:
        return FlagState(False, "off for everyone")
    if user is None or not user.is_authenticated:
        return FlagState(False, "off: not signed in")
    if sandbox and on_in_sandbox(flag):
        return FlagState(True, "on for everyone in the sandbox")
    if flag.superusers and user.is_superuser:
        return FlagState(True, "on for superusers")
    if flag.staff and user.is_staff:
        return FlagState(True, "on for staff")
    if flag.authenticated:
        return FlagState(True, "on for everyone signed in")
    users = set(flag_user_ids) if flag_user_ids is not None else flag._get_user_ids()
    if user.pk in users:
        return FlagState(True, "on for you by name")
    groups = set(flag_group_ids) if flag_group_ids is not None else flag._get_group_ids()
    if groups:
        mine = user_group_ids if user_group_ids is not None else group_ids_of(user)
        if groups & mine:
            return FlagState(True, "on for a group you are in (pilot group)")
    if flag.percent:
        percent = float(flag.percent)
        if rollout_bucket(flag.name, user.pk) < percent * 10:
            return FlagState(True, f"on: you are in the {percent:g}% rollout")
        return FlagState(False, f"off: you are not in the {percent:g}% rollout yet")
    return FlagState(False, "off: not in its groups, users or rollout")


def on_in_sandbox(flag: Flag) -> bool:
    """The flag's metadata says it is on for everyone in a sandbox (select_related("meta")
    saves the query)."""
    from governance.models import FlagMeta

    try:
        meta = flag.meta  # type: ignore[attr-defined]  # FlagMeta's reverse one-to-one
    except FlagMeta.DoesNotExist:
        return False
    return bool(meta.on_in_sandbox)


def group_ids_of(user: User) -> set[int]:
    """The user's group ids, looked up once per user object."""
    cached: set[int] | None = getattr(user, "_marketerapi_group_ids", None)
    if cached is None:
        cached = set(user.groups.values_list("pk", flat=True))
        user._marketerapi_group_ids = cached  # type: ignore[attr-defined]  # a cache on the instance
    return cached


def flag_snapshot(flag: Flag) -> dict[str, Any]:
    """The settings that decide who has the flag, as JSON."""
    return {
        "everyone": flag.everyone,
        "percent": float(flag.percent) if flag.percent is not None else None,
        "groups": sorted(flag.groups.values_list("name", flat=True)) if flag.pk else [],
        "users": sorted(flag.users.values_list("username", flat=True)) if flag.pk else [],
        "superusers": flag.superusers,
        "staff": flag.staff,
        "authenticated": flag.authenticated,
    }


def narrows(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Can the change turn the flag off for someone who has it now?"""
    if before["everyone"] is False:
        return False  # off for everyone already
    if after["everyone"] is False:
        return True
    if before["everyone"] is True:
        return after["everyone"] is not True
    if after["everyone"] is True:
        return False
    return (
        (after["percent"] or 0) < (before["percent"] or 0)
        or bool(set(before["groups"]) - set(after["groups"]))
        or bool(set(before["users"]) - set(after["users"]))
        or any(before[k] and not after[k] for k in ("superusers", "staff", "authenticated"))
    )


def describe_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The settings a change touches, in words: `everyone True → False, percent 10.0 → None`."""
    parts = []
    for key in ("everyone", "percent", "groups", "users"):
        if before[key] != after[key]:
            parts.append(f"{key} {before[key]!r} → {after[key]!r}")
    return ", ".join(parts) or "no change"
