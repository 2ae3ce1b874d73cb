"""Pages of an audience's versions and of a version's members, for every door that shows
them (the API, the portal): the shared DRF cursor pagination (marketerapi.api).

Versions page newest first by number. Members page by profile id, bound to one version:

the cursor is DRF's (a position on `profile_id`) plus `v`, the version it pages through:
the first page reads the live version, later pages keep reading that one (the selector
answers 410 `cursor_expired` once its members are no longer kept). A cursor that cannot be
read, or that belongs to another audience, is a 400 `invalid_cursor`, like every list's.
"""

from __future__ import annotations

import binascii
from base64 import b64decode, b64encode
from dataclasses import dataclass
from urllib import parse

from rest_framework.pagination import Cursor
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

from audiences.models import Audience, AudienceVersion, Membership
from audiences.publishing import selectors
from audiences.publishing.errors import VersionNotFound
from governance.actors import Actor
from marketerapi.api import CursorPagination, InvalidCursor

VERSION_TOKEN = "v"  # noqa: S105  (a query-string key, not a secret)


@dataclass(frozen=True)
class MembersPage:
    """One page: the version paged through (None: nothing is live), its members, the next
    page's link (None on the last) and its cursor."""

    version: AudienceVersion | None
    members: list[Membership]
    next_link: str | None = None
    next_cursor: str | None = None


def _tokens(encoded: str) -> dict[str, list[str]]:
    try:
        return parse.parse_qs(b64decode(encoded.encode("ascii")).decode("ascii"), keep_blank_values=True)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidCursor("The cursor could not be read.") from None


def members_cursor(version_id: int, after_profile_id: int) -> str:
    """The cursor of the page after `after_profile_id` in the version (a deep link)."""
    querystring = parse.urlencode({"p": str(after_profile_id), VERSION_TOKEN: str(version_id)})
    return b64encode(querystring.encode("ascii")).decode("ascii")


class VersionPagination(CursorPagination):
    page_size = 50
    max_page_size = 500
    ordering = "-number"


class MembershipPagination(CursorPagination):
    ordering = "profile_id"
    cursor_extra_keys = frozenset({VERSION_TOKEN})
    version_id: int | None = None

    def cursor_version(self, request: Request) -> int | None:
        """The version a cursor pages through; None without a cursor (the first page)."""
        encoded = request.query_params.get(self.cursor_query_param)
        if not encoded:
            return None
        value = _tokens(encoded).get(VERSION_TOKEN, [""])[0]
        if not value.isdigit():
            raise InvalidCursor("The cursor does not name the version it pages through.")
        return int(value)

    def members_page(self, *, actor: Actor, audience: Audience, request: Request) -> MembersPage:
        """The page the request asks for: two queries with a cursor (its version, the
        members joined to their profiles), one without."""
        try:
            version, members = selectors.membership_list(
                actor=actor, audience=audience, version_id=self.cursor_version(request)
            )
        except VersionNotFound:
            raise InvalidCursor("The cursor belongs to another audience.") from None
        if version is None:
            return MembersPage(None, [])
        self.version_id = version.pk
        rows = self.paginate_queryset(members, request) or []
        return MembersPage(version, rows, self.get_next_link(), self.get_next_cursor())

    def encode_cursor(self, cursor: Cursor) -> str:
        # DRF's tokens (offset, reverse, position) and the version.
        tokens = {"o": str(cursor.offset)} if cursor.offset else {}
        if cursor.reverse:
            tokens["r"] = "1"
        if cursor.position is not None:
            tokens["p"] = str(cursor.position)
        tokens[VERSION_TOKEN] = str(self.version_id)
        encoded = b64encode(parse.urlencode(tokens).encode("ascii")).decode("ascii")
        assert self.base_url is not None  # set by paginate_queryset
        return replace_query_param(self.base_url, self.cursor_query_param, encoded)
