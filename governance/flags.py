"""Feature flags (django-waffle) seen from the policy engine and the API."""

from __future__ import annotations

from typing import Any

from waffle.models import Flag


def flag_active_for(name: str, actor: Any) -> bool:
    """Is flag `name` on for the actor's user? Unknown flags are off (WAFFLE_FLAG_DEFAULT)."""
    flag = Flag.get(name)
    if flag.pk is None:
        return False
    if flag.everyone is True:
        return True
    if flag.everyone is False:
        return False
    user = actor.user
    if user is None:
        return False
    if flag.superusers and user.is_superuser:
        return True
    if flag.staff and user.is_staff:
        return True
    if flag.is_active_for_user(user):
        return True
    if flag.percent:
        # Stable per user: the same person stays in or out as the percentage grows.
        return (user.pk * 2654435761 % 1000) < float(flag.percent) * 10
    return False


def flags_for(actor: Any) -> list[dict[str, Any]]:
    """Every flag with whether it is on for the actor, and its metadata where there is some."""
    out = []
    for flag in Flag.objects.select_related("meta").order_by("name"):
        meta = getattr(flag, "meta", None)
        out.append(
            {
                "name": flag.name,
                "active": flag_active_for(flag.name, actor),
                "description": meta.description if meta else flag.note,
                "owner": meta.owner if meta else "",
                "affects_personalization": bool(meta and meta.affects_personalization),
            }
        )
    return out
