"""Permissions are cached across requests, and a change of roles takes effect at once."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext


def test_roles_are_cached_and_a_role_change_applies_on_the_next_request(api):
    client = api("analyst")
    assert client.post("/api/v1/consent/sync", {"updates": []}, format="json").status_code == 403

    with CaptureQueriesContext(connection) as warm:
        client.get("/api/v1/profiles/")
    assert not any("auth_permission" in q["sql"] for q in warm.captured_queries)

    client.user.groups.add(Group.objects.get(name="developer"))
    assert client.post("/api/v1/consent/sync", {"updates": []}, format="json").status_code != 403

    client.user.groups.remove(Group.objects.get(name="developer"))
    assert client.post("/api/v1/consent/sync", {"updates": []}, format="json").status_code == 403


def test_a_deactivated_user_loses_rights_at_once(api):
    client = api("developer")
    client.get("/api/v1/profiles/")
    client.user.is_active = False
    client.user.save()
    assert client.get("/api/v1/profiles/").status_code == 401


def test_tokens_are_cached_and_revocation_applies_at_once(api):
    from governance.models import ApiToken

    client = api("developer")
    client.get("/api/v1/profiles/")
    with CaptureQueriesContext(connection) as warm:
        client.get("/api/v1/profiles/")
    assert not any("governance_apitoken" in q["sql"] for q in warm.captured_queries)

    token = ApiToken.objects.get(user=client.user)
    token.revoked_at = token.created_at
    token.save(update_fields=["revoked_at"])
    assert client.get("/api/v1/profiles/").json()["code"] == "token_revoked"
