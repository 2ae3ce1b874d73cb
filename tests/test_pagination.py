"""One rule for `limit` and `cursor` on every list (marketerapi.api.CursorPagination; issue 11
item 6 and issue 12): a value outside 1–1,000 or a cursor not taken from a `next` link is a
400 problem naming the allowed range, never a silent default, a 404 or a 500."""

from __future__ import annotations

import base64

import pytest

LISTS = [
    "/api/v1/profiles/",
    "/api/v1/audiences/",
    "/api/v1/events/",
    "/api/v1/approvals/",
    "/api/v1/audit-events/",
    "/api/v1/webhooks/",
    "/api/v1/destinations/",
    "/api/v1/tokens/",
]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("limit", ["1000000", "-5", "abc", "0", "1.5"])
def test_a_limit_outside_the_range_is_a_400_naming_it(api, path, limit):
    response = api("admin").get(path, {"limit": limit})

    assert response.status_code == 400, (path, response.content[:200])
    problem = response.json()
    assert problem["code"] == "invalid_limit"
    assert "1 to 1,000" in problem["hint"]


@pytest.mark.parametrize("path", LISTS)
def test_a_limit_inside_the_range_is_honoured(api, path):
    response = api("admin").get(path, {"limit": "1000"})

    assert response.status_code == 200, (path, response.content[:200])


def _cursor(raw: str) -> str:
    return base64.b64encode(raw.encode()).decode()


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("cursor", ["cD14", "not-base64!", _cursor("p=abc"), _cursor("o=x"), _cursor("p=1&r=2")])
def test_a_crafted_cursor_is_a_400_problem(api, path, cursor):
    response = api("admin").get(path, {"cursor": cursor})

    assert response.status_code == 400, (path, cursor, response.content[:200])
    assert response.json()["code"] == "invalid_cursor"
