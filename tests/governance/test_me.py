"""GET /me: who the caller is and what is in force for them, in a fixed number of queries."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import re_path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from waffle.models import Flag

from governance.api import me
from governance.flags.capabilities import CAPABILITY_FLAGS
from governance.models import ApiToken, FlagMeta


def flag(name: str, *, on: bool | None, description: str = "") -> Flag:
    """on: True/False for everyone; None: decided by groups, users or rollout."""
    created = Flag.objects.create(name=name, everyone=on, note=description)
    if description:
        FlagMeta.objects.create(flag=created, description=description, owner="growth")
    return created


def test_me_through_a_token(api):
    client = api("developer")
    token = ApiToken.objects.get(user=client.user)
    client.user.first_name, client.user.last_name = "Dana", "Kim"
    client.user.save()
    flag("new_preview", on=True, description="The reach waterfall in previews.")
    flag("dark_launch", on=False, description="Not yet.")

    response = client.get("/api/v1/me")

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {
        "id": client.user.pk,
        "username": "p-developer",
        "email": "p-developer@example.test",
        "name": "Dana Kim",
    }
    assert body["roles"] == ["developer"] and body["teams"] == ["growth"]
    assert body["environment"] == {"slug": "sandbox", "name": token.environment.name, "data_kind": "synthetic"}
    assert body["token"]["prefix"] == token.prefix
    assert body["token"]["scopes"] == token.scopes
    assert body["token"]["expires_at"].startswith(f"{token.expires_at:%Y-%m-%dT%H:%M:%S}")
    # In the sandbox the product's capability flags are on for everyone; the rest is the test's.
    assert [f for f in body["flags"] if f["name"] not in CAPABILITY_FLAGS] == [
        {"name": "new_preview", "description": "The reach waterfall in previews."}
    ]
    assert {f["name"] for f in body["flags"]} >= set(CAPABILITY_FLAGS)
    assert body["rate_limits"] == {
        "read": {"limit": 1200, "window": 60, "source": "role:developer"},
        "write": {"limit": 120, "window": 60, "source": "default"},
        "preview": {"limit": 60, "window": 60, "source": "default"},
        "bulk": {"limit": 40, "window": 60, "source": "role:developer"},
    }


def test_me_through_the_portal_session_has_no_token(persona, client):
    user = persona("compliance")
    client.force_login(user)

    body = client.get("/api/v1/me").json()

    assert body["token"] is None
    assert body["roles"] == ["compliance_reviewer"] and body["teams"] == []
    assert body["environment"]["slug"] == "sandbox"
    assert body["rate_limits"]["read"] == {"limit": 600, "window": 60, "source": "default"}


def test_me_in_another_environment_names_it(api, production):
    body = api("operator", production).get("/api/v1/me").json()

    assert body["environment"] == {"slug": "production", "name": production.name, "data_kind": production.data_kind}
    assert body["token"]["prefix"].startswith("mk_production_")


def test_me_needs_authentication(db, client):
    response = client.get("/api/v1/me")

    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_me_answers_in_a_fixed_number_of_queries(api):
    client = api("developer")
    flag("one", on=True, description="One.")
    client.get("/api/v1/me")  # warm: token last use, cached roles
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/v1/me").status_code == 200

    for index in range(5):
        # Half on for everyone, half through a pilot group the user is in.
        created = flag(f"more-{index}", on=True if index % 2 == 0 else None, description=f"More {index}.")
        team = Group.objects.create(name=f"team-{index}")
        client.user.groups.add(team)
        created.groups.add(team)
    client.get("/api/v1/me")  # group changes invalidate the cached roles: warm them again
    with CaptureQueriesContext(connection) as many:
        response = client.get("/api/v1/me")

    assert len(response.json()["flags"]) == 6 + len(CAPABILITY_FLAGS) and len(response.json()["teams"]) == 6
    # The token, the user's groups, the flags with their groups and users.
    assert len(many.captured_queries) == len(few.captured_queries) <= 5, [q["sql"] for q in many.captured_queries]


def test_the_schema_of_me_and_my_quotas_has_no_warnings(db):
    GENERATOR_STATS.reset()
    patterns = [re_path(r"^api/v1/" + p.pattern.regex.pattern.lstrip("^"), p.callback) for p in me.urlpatterns]

    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)

    assert not GENERATOR_STATS._warn_cache, list(GENERATOR_STATS._warn_cache)
    assert not GENERATOR_STATS._error_cache, list(GENERATOR_STATS._error_cache)
    operations = {op["operationId"]: op for item in schema["paths"].values() for op in item.values()}
    assert set(operations) == {"me", "me_quotas"}
    for operation in operations.values():
        assert operation["description"] and set(operation["responses"]) == {"200", "401"}
        assert operation["responses"]["200"]["content"]["application/json"]["examples"]
    components = schema["components"]["schemas"]
    assert set(components["Me"]["properties"]) == {
        "user",
        "roles",
        "teams",
        "environment",
        "token",
        "flags",
        "rate_limits",
    }
    assert set(components["MeRateLimits"]["properties"]) == {"read", "write", "preview", "bulk"}
    assert set(components["Quota"]["properties"]) >= {"limit", "used", "remaining", "period", "resets_at", "percent"}
