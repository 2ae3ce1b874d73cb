"""Reads of published audiences: their versions and the members of the live version.

Both ask the policy engine (`audience.view`: every role) and take an audience the caller
already fetched in their environment (audience_selectors.audience_get: 404 for another
environment's). Memberships are read in pages by profile id over the composite primary key
(version_id, profile_id): every page is one index range scan, as fast on page 1,000 as on
page 1, and a fixed number of queries however many rows a page holds.

The cursor names the version it pages through. The live version's id is read once, by the
first page; later pages keep reading that version even when a new one goes live meanwhile,
so a client never sees a member twice or misses one (AUDIENCE_VERSIONS_WITH_MEMBERS keeps
the replaced version's rows for a while). When they are gone the cursor answers 410.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from audiences.models import Audience, AudienceVersion, Membership, VersionState
from audiences.profiles import selectors, services
from audiences.profiles.pii import SHOWN_FIELDS, mask_pii
from audiences.publishing.errors import CursorExpired
from governance import policy
from governance.actors import Actor
from marketerapi.problems import ApplicationError

DEFAULT_PAGE = 100
MAX_PAGE = 1000
# The profile columns a membership page shows (PII masked by the API for most roles).
MEMBER_FIELDS: tuple[str, ...] = SHOWN_FIELDS


class InvalidCursor(ApplicationError):
    status = 400
    code = "invalid_cursor"
    title = "The cursor is not valid"
    hint = "Use the `next` link of the previous page as it is, or start again without a cursor."


def version_list(*, actor: Actor, audience: Audience) -> QuerySet[AudienceVersion]:
    """Every version of the audience, newest first, with who made it (one query per page)."""
    policy.require(actor, "audience.view", audience)
    return (
        AudienceVersion.objects.filter(audience=audience)
        .select_related("created_by", "rebuilt_from", "job")
        .order_by("-number")
    )


@dataclass(frozen=True)
class MembersPage:
    version: AudienceVersion | None
    members: list[Membership]
    next_cursor: str | None
    limit: int


def encode_cursor(version_id: int, after_profile_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{version_id}:{after_profile_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, version_id, after = raw.split(":")
        if tag != "v1":
            raise ValueError(tag)
        return int(version_id), int(after)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursor("The cursor could not be read.") from None


def page_size(raw: Any) -> int:
    if raw in (None, ""):
        return DEFAULT_PAGE
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= MAX_PAGE:
        raise ApplicationError(
            f"limit must be a whole number from 1 to {MAX_PAGE:,}; got {raw!r}.",
            status=400,
            code="invalid_limit",
            hint=f"Send ?limit= between 1 and {MAX_PAGE:,} (default {DEFAULT_PAGE}).",
        )
    return value


def live_members_page(
    *, actor: Actor, audience: Audience, cursor: str | None = None, limit: int = DEFAULT_PAGE
) -> MembersPage:
    """One page of the live version's members in profile id order (or of the version the
    cursor pages through): two queries — the version, and the members joined to profiles."""
    policy.require(actor, "audience.view", audience)
    if cursor:
        version_id, after = decode_cursor(cursor)
        version = AudienceVersion.objects.filter(pk=version_id, audience=audience).first()
        if version is None:
            raise InvalidCursor("The cursor belongs to another audience.")
        if version.state != VersionState.READY or not version.members_retained:
            raise CursorExpired(
                f"Version {version.number} was replaced and its members are no longer kept.",
            )
    else:
        after = 0
        version = audience.live_version
        if version is None:
            return MembersPage(None, [], None, limit)
    rows = list(
        Membership.objects.filter(version_id=version.pk, profile_id__gt=after)
        .select_related("profile")
        .only("version_id", "profile_id", *(f"profile__{name}" for name in MEMBER_FIELDS))
        .order_by("profile_id")[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(version.pk, rows[-1].profile_id) if more else None
    return MembersPage(version, rows, next_cursor, limit)


def members_as_seen(*, actor: Actor, page: MembersPage) -> tuple[list[dict[str, Any]], bool]:
    """A page's members as the caller may see them, in every door: `(rows, pii_masked)`.
    Emails, phones and names are masked for every role but compliance_reviewer, whose
    unmasked read is audited (`profile.pii_read`), like the profiles API."""
    decision = selectors.profile_pii_decision(actor=actor)
    profiles = [membership.profile for membership in page.members]
    if decision.allowed and profiles:
        services.profile_pii_read_record(actor=actor, profiles=profiles, decision=decision)
    rows = []
    for profile in profiles:
        row = {"profile_id": profile.pk, **{name: getattr(profile, name) for name in MEMBER_FIELDS}}
        rows.append(row if decision.allowed else mask_pii(row))
    return rows, not decision.allowed
