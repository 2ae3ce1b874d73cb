"""Reads of published audiences: their versions and the members of one version.

Both ask the policy engine (`audience.view`: every role) and take an audience the caller
already fetched in their environment (definitions.selectors.audience_get: 404 for another
environment's). Members are read in profile id order over the composite primary key
(version_id, profile_id), so a page is one index range scan, as fast on page 1,000 as on
page 1 (pagination.py pages them, for the API and the portal alike).

A walk through the members reads one version: the live one when it starts, and the same
one on later pages even when a new version goes live meanwhile, so nobody is seen twice
or missed (AUDIENCE_VERSIONS_WITH_MEMBERS keeps the replaced version's rows for a while).
Once they are gone, asking for them is a 410.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet

from audiences.models import Audience, AudienceVersion, Membership, VersionState
from audiences.profiles import selectors, services
from audiences.profiles.pii import SHOWN_FIELDS, mask_pii
from audiences.publishing.errors import CursorExpired, VersionNotFound
from governance import policy
from governance.actors import Actor

# The profile columns a membership page shows (PII masked for most roles).
MEMBER_FIELDS: tuple[str, ...] = SHOWN_FIELDS


def version_list(*, actor: Actor, audience: Audience) -> QuerySet[AudienceVersion]:
    """Every version of the audience, newest first, with who made it (one query per page)."""
    policy.require(actor, "audience.view", audience)
    return (
        AudienceVersion.objects.filter(audience=audience)
        .select_related("created_by", "rebuilt_from", "job")
        .order_by("-number")
    )


def membership_list(
    *, actor: Actor, audience: Audience, version_id: int | None = None
) -> tuple[AudienceVersion | None, QuerySet[Membership]]:
    """The version whose members are read and its members in profile id order, with the
    profile columns a page shows: the live version (None, and no members, when nothing
    is live), or — a walk that began earlier — the audience's version `version_id`.

    Raises VersionNotFound when the audience has no such version, CursorExpired (410)
    when that version's members are no longer kept. One query for a given version; none
    for the live one (audience_get has read it)."""
    policy.require(actor, "audience.view", audience)
    if version_id is None:
        version = audience.live_version
        if version is None:
            return None, Membership.objects.none()
    else:
        version = AudienceVersion.objects.filter(pk=version_id, audience=audience).first()
        if version is None:
            raise VersionNotFound(f"{audience.name!r} has no version with id {version_id}.")
        if version.state != VersionState.READY or not version.members_retained:
            raise CursorExpired(f"Version {version.number} was replaced and its members are no longer kept.")
    members = (
        Membership.objects.filter(version_id=version.pk)
        .select_related("profile")
        .only("version_id", "profile_id", *(f"profile__{name}" for name in MEMBER_FIELDS))
        .order_by("profile_id")
    )
    return version, members


def members_as_seen(*, actor: Actor, members: Sequence[Membership]) -> tuple[list[dict[str, Any]], bool]:
    """A page's members as the caller may see them, in every door: `(rows, pii_masked)`.
    Emails, phones and names are masked for every role but compliance_reviewer, whose
    unmasked read is audited (`profile.pii_read`), like the profiles API."""
    decision = selectors.profile_pii_decision(actor=actor)
    profiles = [membership.profile for membership in members]
    if decision.allowed and profiles:
        services.profile_pii_read_record(actor=actor, profiles=profiles, decision=decision)
    rows = []
    for profile in profiles:
        row = {"profile_id": profile.pk, **{name: getattr(profile, name) for name in MEMBER_FIELDS}}
        rows.append(row if decision.allowed else mask_pii(row))
    return rows, not decision.allowed
