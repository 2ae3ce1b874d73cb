"""Bad bytes in a request are a 400 problem with a hint, never a 500 (issue 12): JSON nested
hundreds of levels deep, NUL characters in JSON values or keys, in the query or in a form."""

from __future__ import annotations

import json

import pytest

RULES = {"all": [{"attr": "region", "op": "in", "value": ["EU"]}]}


def _post(client, path, body):
    return client.post(
        path, data=json.dumps(body) if not isinstance(body, str) else body, content_type="application/json"
    )


@pytest.mark.parametrize("depth", [100, 1000, 100_000])
def test_json_nested_too_deeply_is_a_400_problem(api, depth):
    body = "[" * depth + "]" * depth

    response = _post(api("developer"), "/api/v1/audiences/preview", body)

    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "json_too_deep" and "64 levels" in problem["hint"]


def test_a_rules_tree_of_ordinary_depth_is_read(api):
    rules: dict = {"all": [{"attr": "region", "op": "eq", "value": "EU"}]}
    for _ in range(5):  # the rules language allows 8 levels (audiences/rules.py)
        rules = {"any": [rules]}

    response = _post(api("developer"), "/api/v1/audiences/preview", {"rules": rules, "channel": "email"})

    assert response.status_code == 200, response.json()


@pytest.mark.parametrize(
    "body",
    [
        {"rules": {"all": [{"attr": "region", "op": "eq", "value": "E\u0000U"}]}, "channel": "email"},
        {"rules": {"all": [{"attr": "attributes.x\u0000", "op": "eq", "value": "1"}]}, "channel": "email"},
        {"rules": RULES, "channel": "email", "note\u0000": 1},
    ],
)
def test_a_nul_character_in_json_is_a_400_problem_naming_where(api, body):
    response = _post(api("developer"), "/api/v1/audiences/preview", body)

    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "nul_character"
    assert problem["errors"][0]["pointer"].startswith("/")


def test_a_nul_character_in_profile_attributes_writes_nothing(api):
    from audiences.models import Profile

    rows = [{"external_id": "nul-1", "attributes": {"loyalty_tier": "gold\u0000"}}]
    response = _post(api("developer"), "/api/v1/profiles/bulk", {"profiles": rows})

    assert response.status_code == 400 and response.json()["code"] == "nul_character"
    assert not Profile.objects.filter(external_id="nul-1").exists()


@pytest.mark.parametrize("query", ["?external_id=%00", "?external_id=a%00b", "?region%00=EU"])
def test_a_nul_character_in_the_query_is_a_400_problem(api, query):
    response = api("developer").get("/api/v1/profiles/" + query)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "nul_character"


def test_a_nul_character_in_a_portal_form_is_a_friendly_400_page(client, persona):
    client.force_login(persona("operator"))

    response = client.get("/audiences/?q=%00")

    assert response.status_code == 400
    assert "Bad request" in response.content.decode()
