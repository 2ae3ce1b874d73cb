"""Feature flags (django-waffle) seen from the policy engine, the API and the portal.

`flag_active_for(name, actor)` is the one reading of a flag: the policy engine's
`feature_flag` rule, the `FlagRequired("name")` permission class of DRF views, the
`@flag_required("name")` view decorator and `GET /api/v1/flags/` all ask it, so a person
sees the same answer through every door. Changes go through governance/flags/services.py.

A flag is on for a user when, in this order: `everyone` is set (yes or no decides alone);
the user is a superuser (`superusers`, on by default in waffle), staff (`staff`) or signed
in (`authenticated`); the user is listed in `users` or is in one of `groups` (a pilot
group); or the user falls in the `percent` rollout. The rollout bucket is a hash of the
flag's name and the user's id: stable, so a person stays in as the percentage grows, and
independent per flag, so the same 10 % of people are not the guinea pigs of every flag.
Waffle's `languages`, `testing` and `rollout` modes are not used by the API.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from waffle.models import Flag

from marketerapi.problems import ApplicationError


class FeatureDisabled(ApplicationError):
    status = 403
    code = "feature_disabled"
    title = "This feature is not enabled for you"
    hint = "Ask an admin to add you to the flag's pilot group; GET /api/v1/flags/ lists what is on for you."


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
    user: Any,
    *,
    user_group_ids: set[int] | None = None,
    flag_group_ids: Iterable[int] | None = None,
    flag_user_ids: Iterable[int] | None = None,
) -> FlagState:
    """Whether `flag` is on for `user`, and why. Pass the id sets when you have them
    (prefetched); otherwise waffle's cached sets and one query for the user's groups."""
    if flag.pk is None:
        return FlagState(False, "off: no such flag")
    if flag.everyone is True:
        return FlagState(True, "on for everyone")
    if flag.everyone is False:
        return FlagState(False, "off for everyone")
    if user is None or not getattr(user, "is_authenticated", False):
        return FlagState(False, "off: not signed in")
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


def group_ids_of(user: Any) -> set[int]:
    """The user's group ids, looked up once per user object."""
    cached = getattr(user, "_marketerapi_group_ids", None)
    if cached is None:
        cached = set(user.groups.values_list("pk", flat=True))
        user._marketerapi_group_ids = cached
    return cached


def flag_active_for(name: str, actor: Any) -> bool:
    """Is flag `name` on for the actor's user? Unknown flags are off (WAFFLE_FLAG_DEFAULT).
    `actor` may be an Actor, or None for someone not signed in."""
    return evaluate(Flag.get(name), getattr(actor, "user", None)).active


def flags_for(actor: Any) -> list[dict[str, Any]]:
    """Every flag with whether it is on for the actor and why, its description, owner and
    rollout — in a fixed number of queries however many flags there are."""
    user = getattr(actor, "user", None)
    mine = group_ids_of(user) if user is not None and user.is_authenticated else set()
    flags = Flag.objects.select_related("meta").prefetch_related("groups", "users").order_by("name")
    return [flag_as_dict(flag, user, mine) for flag in flags]


def flag_as_dict(flag: Flag, user: Any, user_group_ids: set[int] | None = None) -> dict[str, Any]:
    """A flag as the API shows it (groups and users prefetched, or read here)."""
    meta = getattr(flag, "meta", None)
    groups = list(flag.groups.all())
    user_ids = [u.pk for u in flag.users.all()]
    state = evaluate(
        flag,
        user,
        user_group_ids=user_group_ids,
        flag_group_ids=[g.pk for g in groups],
        flag_user_ids=user_ids,
    )
    return {
        "name": flag.name,
        "active": state.active,
        "reason": state.reason,
        "description": meta.description if meta else flag.note,
        "owner": meta.owner if meta else "",
        "affects_personalization": bool(meta and meta.affects_personalization),
        "rollout": {
            "everyone": flag.everyone,
            "percent": float(flag.percent) if flag.percent is not None else None,
            "groups": sorted(g.name for g in groups),
            "users": len(user_ids),
        },
        "modified": flag.modified.isoformat() if flag.modified else None,
    }


# --- gates for views --------------------------------------------------------------------


def _refusal(name: str) -> FeatureDisabled:
    return FeatureDisabled(f"The feature behind the flag {name!r} is not enabled for you yet.", flag=name)


def FlagRequired(name: str) -> type:
    """A DRF permission class (named like one, though a factory) that lets a request
    through only when flag `name` is on for the caller:
    `permission_classes = [IsAuthenticated, FlagRequired("new_preview")]`.
    Refusal: 403 problem+json `feature_disabled` with a hint."""
    from rest_framework.permissions import BasePermission

    class _FlagRequired(BasePermission):
        flag_name = name

        def has_permission(self, request: Any, view: Any) -> bool:
            user = getattr(request, "user", None)
            if not evaluate(Flag.get(name), user).active:
                raise _refusal(name)
            return True

    _FlagRequired.__name__ = _FlagRequired.__qualname__ = f"FlagRequired[{name}]"
    return _FlagRequired


def flag_required(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a view (a function, or a method of a class-based view) so it runs only when
    flag `name` is on for the signed-in user. In DRF views the refusal is a
    `feature_disabled` problem; in portal pages a 403 page with the same title and hint."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = next((a for a in args[:2] if hasattr(a, "META")), None)
            user = getattr(request, "user", None)
            if evaluate(Flag.get(name), user).active:
                return view(*args, **kwargs)
            return _refuse(request, name)

        return wrapper

    return decorate


def _refuse(request: Any, name: str) -> Any:
    from rest_framework.request import Request

    error = _refusal(name)
    if request is None or isinstance(request, Request):
        raise error
    from django.http import JsonResponse

    from marketerapi.problems import PROBLEM_CONTENT_TYPE

    if request.path.startswith("/api/") or "json" in request.headers.get("Accept", ""):
        return JsonResponse(error.as_problem(), status=error.status, content_type=PROBLEM_CONTENT_TYPE)
    from django.shortcuts import render

    from marketerapi.middleware import current_request_id

    context = {"status": 403, "title": error.title, "hint": error.hint, "request_id": current_request_id()}
    return render(request, "portal/error.html", context, status=403)
