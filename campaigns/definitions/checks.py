"""The checks of a campaign's definition: its values, its assets' merge fields, its
schedule, whether the destination can send the channel. Used by create and edit (a 422
naming every problem, nothing written) and by readiness (a check that fails, with the hint).
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime
from typing import Any

from django.utils import timezone

from audiences.models import Audience, CatalogueEntry, CatalogueKind
from campaigns.models import CAMPAIGN_CHANNELS
from governance.models import Environment
from integrations import adapters
from integrations.models import Destination

MERGE_FIELD = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# The profile columns a template may name; custom attributes are `attributes.<key>` or the bare key.
PROFILE_FIELDS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "locale",
    "country",
    "region",
    "lifecycle_stage",
)
ASSET_KEYS = ("subject", "body", "sender")
# What each channel needs of the assets.
REQUIRED_ASSETS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "body", "sender"),
    "sms": ("body",),
    "push": ("body",),
}


def problem(pointer: str, code: str, message: str, hint: str) -> dict[str, str]:
    return {"pointer": pointer, "code": code, "message": message, "hint": hint}


def merge_fields(assets: dict[str, Any]) -> list[tuple[str, str]]:
    """(asset key, field name) of every {{merge_field}} in the assets, in order."""
    found: list[tuple[str, str]] = []
    for key in ("subject", "body"):
        text = assets.get(key)
        if isinstance(text, str):
            found.extend((key, name) for name in MERGE_FIELD.findall(text))
    return found


def known_fields(environment: Environment) -> list[str]:
    """The names a template may use: profile columns and the environment's custom attributes."""
    attributes = list(
        CatalogueEntry.objects.filter(environment=environment, kind=CatalogueKind.ATTRIBUTE).values_list(
            "key", flat=True
        )
    )
    return [*PROFILE_FIELDS, *attributes, *(f"attributes.{key}" for key in attributes)]


def asset_problems(environment: Environment, channel: str, assets: Any) -> list[dict[str, str]]:
    if not isinstance(assets, dict):
        return [problem("/assets", "invalid", "`assets` must be an object.", 'Send {"subject", "body", "sender"}.')]
    problems = []
    for key in sorted(set(assets) - set(ASSET_KEYS)):
        problems.append(
            problem(
                f"/assets/{key}",
                "unknown_asset",
                f"Campaigns have no asset {key!r}.",
                f"Use only: {', '.join(ASSET_KEYS)}.",
            )
        )
    for key in ASSET_KEYS:
        if key in assets and not isinstance(assets[key], str):
            problems.append(problem(f"/assets/{key}", "invalid_type", f"{key!r} must be text.", "Send a string."))
    fields = merge_fields(assets)
    if fields:
        known = known_fields(environment)
        for key, name in fields:
            if name in known:
                continue
            nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            suggestion = f" — did you mean {{{{{nearest[0]}}}}}?" if nearest else "."
            problems.append(
                problem(
                    f"/assets/{key}",
                    "unknown_merge_field",
                    f"The merge field {{{{{name}}}}} in the {key} is not a profile field nor a custom attribute "
                    f"seen in {environment.slug}{suggestion}",
                    (f"Write {{{{{nearest[0]}}}}} instead. " if nearest else "")
                    + f"Profile fields: {', '.join(PROFILE_FIELDS)}; custom attributes by their key.",
                )
            )
    return problems


def missing_assets(channel: str, assets: dict[str, Any]) -> list[str]:
    return [key for key in REQUIRED_ASSETS.get(channel, ()) if not str(assets.get(key) or "").strip()]


def schedule_problems(
    environment: Environment, schedule_at: datetime | None, *, now: datetime | None = None
) -> list[dict[str, str]]:
    if schedule_at is None:
        return []
    now = now or timezone.now()
    if schedule_at <= now:
        from governance.approvals.windows import describe_moment

        return [
            problem(
                "/schedule_at",
                "schedule_in_past",
                f"The schedule {describe_moment(environment, schedule_at)} is in the past.",
                "Choose a time in the future (in the environment's time zone), or leave schedule_at out to send "
                "when activated.",
            )
        ]
    return []


def send_channels(destination: Destination) -> tuple[str, ...]:
    cls = adapters.get(destination.adapter)
    return tuple(getattr(cls, "send_channels", ())) if cls is not None else ()


def destination_problems(destination: Destination, channel: str) -> list[dict[str, str]]:
    channels = send_channels(destination)
    if channel in channels:
        return []
    return [
        problem(
            "/destination",
            "channel_not_supported",
            f"The destination {destination.name!r} ({destination.adapter}) cannot send {channel}"
            + (f"; it sends {', '.join(channels)}." if channels else "; it sends no messages."),
            "Choose a destination whose adapter sends this channel (GET /api/v1/destinations/), or another channel.",
        )
    ]


def channel_problems(channel: Any) -> list[dict[str, str]]:
    if channel in CAMPAIGN_CHANNELS:
        return []
    return [
        problem(
            "/channel",
            "invalid_choice",
            f"{channel!r} is not a campaign channel.",
            f"Use one of: {', '.join(CAMPAIGN_CHANNELS)}.",
        )
    ]


def audience_problems(audience: Audience, channel: str) -> list[dict[str, str]]:
    if audience.channel == channel:
        return []
    return [
        problem(
            "/audience",
            "audience_channel_mismatch",
            f"The audience {audience.name!r} is built for {audience.channel}; this campaign sends {channel}.",
            f"Choose an audience whose channel is {channel} (its members have consent and an address for it).",
        )
    ]
