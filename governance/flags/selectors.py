"""Reads of feature flags (django-waffle), for the policy engine, the API and the portal.

`flag_active_for(name, actor)` is the one reading of a flag: the policy engine's
`feature_flag` rule, the gates of views (governance/flags/gates.py) and `GET /api/v1/flags/`
all come down to the same evaluation (governance/flags/rollout.py), so a person sees the
same answer through every door. Changes go through governance/flags/services.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from waffle.models import Flag

from governance import policy
from governance.flags.errors import FlagNotFound
from governance.flags.rollout import evaluate, group_ids_of

if TYPE_CHECKING:
    from governance.actors import Actor


def flag_active_for(name: str, actor: Actor | None) -> bool:
    """Is flag `name` on for the actor's user? Unknown flags are off (WAFFLE_FLAG_DEFAULT).
    `actor` may be None for someone not signed in."""
    if actor is None:
        return evaluate(Flag.get(name), None).active
    environment = getattr(actor, "environment", None)
    sandbox = environment is not None and environment.is_sandbox
    return evaluate(Flag.get(name), actor.user, sandbox=sandbox).active


def flags_for(actor: Actor) -> list[dict[str, Any]]:
    """Every flag with whether it is on for the actor and why, its description, owner and
    rollout — in a fixed number of queries however many flags there are. No policy check:
    it is what the actor sees of their own capabilities (GET /me)."""
    user = actor.user
    mine = group_ids_of(user) if user is not None else set()
    # "meta" is FlagMeta's one-to-one to waffle's Flag: the stubs do not see reverse relations on it.
    flags = Flag.objects.select_related("meta").prefetch_related("groups", "users").order_by("name")  # type: ignore[misc]
    sandbox = actor.environment is not None and actor.environment.is_sandbox
    return [flag_as_dict(flag, user, mine, sandbox=sandbox) for flag in flags]


def flag_list(*, actor: Actor) -> list[dict[str, Any]]:
    """`flag.view`: every flag as flags_for shows it (GET /flags/)."""
    policy.require(actor, "flag.view")
    return flags_for(actor)


def flag_get(*, actor: Actor, name: str) -> Flag:
    """`flag.view`: one flag with its metadata, groups and users; FlagNotFound (404) when
    there is none of that name."""
    policy.require(actor, "flag.view")
    flag = (
        Flag.objects.select_related("meta")  # type: ignore[misc]  # FlagMeta's reverse one-to-one (see flags_for)
        .prefetch_related("groups", "users")
        .filter(name=name)
        .first()
    )
    if flag is None:
        raise FlagNotFound(f"There is no flag {name!r}.", hint="GET /api/v1/flags/ lists them.")
    return flag


def flag_as_dict(
    flag: Flag, user: User | None, user_group_ids: set[int] | None = None, *, sandbox: bool = False
) -> dict[str, Any]:
    """A flag as the API shows it (groups and users prefetched, or read here); `sandbox`:
    the caller acts in a sandbox."""
    meta = getattr(flag, "meta", None)
    groups = list(flag.groups.all())
    user_ids = [u.pk for u in flag.users.all()]
    state = evaluate(
        flag,
        user,
        user_group_ids=user_group_ids,
        flag_group_ids=[g.pk for g in groups],
        flag_user_ids=user_ids,
        sandbox=sandbox,
    )
    return {
        "name": flag.name,
        "active": state.active,
        "reason": state.reason,
        "description": meta.description if meta else flag.note,
        "owner": meta.owner if meta else "",
        "affects_personalization": bool(meta and meta.affects_personalization),
        "on_in_sandbox": bool(meta and meta.on_in_sandbox),
        "rollout": {
            "everyone": flag.everyone,
            "percent": float(flag.percent) if flag.percent is not None else None,
            "groups": sorted(g.name for g in groups),
            "users": len(user_ids),
        },
        "modified": flag.modified.isoformat() if flag.modified else None,
    }
