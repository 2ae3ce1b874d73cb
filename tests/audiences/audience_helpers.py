"""Helpers for the audience definition tests: audiences made directly in the database, and a
stand-in for publishing (the publish service arrives separately) that makes a version live."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.utils import timezone

from audiences.models import Audience, AudienceState, AudienceVersion, Membership, Profile, VersionState
from governance.models import Environment

RULES_EU = {"all": [{"attr": "region", "op": "in", "value": ["EU"]}]}


def team(name: str) -> Group:
    return Group.objects.get_or_create(name=name)[0]


def make_audience(
    environment: Environment,
    name: str = "EU customers",
    *,
    owner: str = "growth",
    rules: dict[str, Any] | None = None,
    channel: str = "email",
    **extra: Any,
) -> Audience:
    return Audience.objects.create(
        environment=environment,
        name=name,
        owner_team=team(owner),
        channel=channel,
        purpose=extra.pop("purpose", "winback"),
        description=extra.pop("description", "EU customers, for tests."),
        rules=rules if rules is not None else RULES_EU,
        **extra,
    )


def make_live(audience: Audience, members: Iterable[Profile] = ()) -> AudienceVersion:
    """Make the audience's current rules its live version with these members."""
    members = list(members)
    number = (audience.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    version = AudienceVersion.objects.create(
        audience=audience,
        number=number,
        rules=audience.rules,
        channel=audience.channel,
        state=VersionState.READY,
        matching=len(members),
        members=len(members),
        built_at=timezone.now(),
    )
    Membership.objects.bulk_create([Membership(version=version, profile=p) for p in members])
    audience.live_version = version
    audience.state = AudienceState.PUBLISHED
    audience.save(update_fields=["live_version", "state"])
    return version


def create_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Lapsed EU customers",
        "owner_team": "growth",
        "channel": "email",
        "purpose": "winback",
        "description": "EU customers who lapsed.",
        "rules": {"all": [{"attr": "region", "op": "in", "value": ["EU"]}, {"consent": "email", "is": True}]},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}
