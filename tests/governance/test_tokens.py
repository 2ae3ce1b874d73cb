"""Tokens: scopes, expiry, revocation, last use, service accounts, and the tokens API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from governance.access.services import service_account_create, token_issue
from governance.actors import Actor
from governance.models import ApiToken, AuditEvent, ServiceAccount, hash_token
from marketerapi.problems import InvalidInput
from tests.refusals import denied_event, refused


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_issue_shows_the_secret_once_and_stores_its_hash(api):
    client = api("developer")

    response = client.post("/api/v1/tokens/", {"name": "crm-sync", "scopes": ["read", "ingest"]}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    secret = body["token"]
    assert secret.startswith("mk_sandbox_") and body["scopes"] == ["read", "ingest"]
    token = ApiToken.objects.get(pk=body["id"])
    assert token.key_hash == hash_token(secret) and secret not in str(token.__dict__)
    assert (token.expires_at - timezone.now()).days in (89, 90)
    listed = client.get("/api/v1/tokens").json()["results"]
    assert all("token" not in item for item in listed)
    assert AuditEvent.objects.filter(action="token.create", outcome="allowed").count() == 1
    refused(bearer(secret).get("/api/v1/tokens/"), 403, "permission_denied")  # read+ingest, no admin scope


def test_unknown_scope_and_scopes_beyond_the_owners_roles_are_refused(api):
    client = api("developer")
    bad = client.post("/api/v1/tokens/", {"name": "x", "scopes": ["read", "godmode"]}, format="json")
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_scope"
    assert "read, write, publish, export, ingest, admin" in bad.json()["hint"]

    beyond = client.post("/api/v1/tokens/", {"name": "x", "scopes": ["export"]}, format="json")
    assert beyond.status_code == 422 and beyond.json()["code"] == "scope_exceeds_roles"
    assert ApiToken.objects.filter(name="x").count() == 0


def test_unknown_fields_are_listed(api):
    response = api("developer").post("/api/v1/tokens/", {"name": "x", "role": "admin"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["pointer"] == "/role"
    assert "Allowed: name, scopes" in response.json()["errors"][0]["message"]


def test_roles_without_token_rights_get_403_with_the_roles_named(api):
    client = api("analyst")
    response = client.post("/api/v1/tokens/", {"name": "x"}, format="json")
    assert "developer, admin" in refused(response, 403, "permission_denied")["hint"]
    denied_event(client.user, "token.create")


def test_revoked_and_expired_tokens_get_401_with_a_hint(api, persona, sandbox):
    client = api("developer")
    secret = client.post("/api/v1/tokens/", {"name": "short", "scopes": ["read"]}, format="json").json()
    victim = bearer(secret["token"])
    assert victim.get("/api/v1/me/").status_code in (200, 404)  # /me arrives with the limits work

    assert client.delete(f"/api/v1/tokens/{secret['id']}").status_code == 204
    refused = victim.get("/api/v1/tokens/")
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"
    assert "new token" in refused.json()["hint"]
    assert client.delete(f"/api/v1/tokens/{secret['id']}").json()["code"] == "already_revoked"

    token = ApiToken.objects.exclude(pk=secret["id"]).get(user__username="p-developer")
    # Through the model, as every code path changes a token: a raw UPDATE bypasses the token
    # cache (governance/permcache.py) and would apply only when the cached entry expires.
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save(update_fields=["expires_at"])
    expired = client.get("/api/v1/tokens/")
    assert expired.status_code == 401 and expired.json()["code"] == "token_expired"


def test_one_cannot_see_or_revoke_someone_elses_token(api, persona, sandbox):
    owner = api("developer")
    other = api("admin")
    theirs = owner.post("/api/v1/tokens/", {"name": "mine", "scopes": ["read"]}, format="json").json()
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=owner._credentials["HTTP_AUTHORIZATION"])
    dev2 = persona("outsider")
    dev2.groups.add(*persona("developer").groups.filter(name="developer"))
    from tests.conftest import issue_test_token

    intruder = bearer(issue_test_token(dev2, sandbox))
    refused(intruder.delete(f"/api/v1/tokens/{theirs['id']}"), 404, "not_found")
    assert other.delete(f"/api/v1/tokens/{theirs['id']}").status_code == 204  # admins may


def test_token_of_another_environment_sees_nothing_here(api, pilot):
    sandbox_client = api("developer")
    made = sandbox_client.post("/api/v1/tokens/", {"name": "s", "scopes": ["read"]}, format="json").json()
    pilot_client = api("admin", pilot)
    assert pilot_client.get(f"/api/v1/tokens/{made['id']}").status_code == 404


def test_last_used_at_is_written_at_most_once_a_minute(api):
    client = api("developer")
    client.get("/api/v1/tokens/")
    token = ApiToken.objects.get(user__username="p-developer")
    first = token.last_used_at
    assert first is not None
    client.get("/api/v1/tokens/")
    token.refresh_from_db()
    assert token.last_used_at == first


def test_service_account_tokens_answer_to_their_owner(persona, sandbox):
    developer = persona("developer")
    actor = Actor(user=developer, environment=sandbox)
    account = service_account_create(actor=actor, username="svc-crm", roles=["developer"], description="CRM sync")

    issued = token_issue(actor=actor, user=account.user, name="crm", scopes=["ingest"])

    assert issued.token.owner == developer and issued.token.user == account.user
    assert not account.user.has_usable_password()
    response = bearer(issued.secret).post("/api/v1/consent/sync", {"updates": []}, format="json")
    assert response.status_code != 401


def test_service_account_roles_never_exceed_the_creators(persona, sandbox):
    actor = Actor(user=persona("developer"), environment=sandbox)
    with pytest.raises(Exception, match="only roles you hold"):
        service_account_create(actor=actor, username="svc-x", roles=["admin"])
    assert not ServiceAccount.objects.exists()


def test_only_the_owner_issues_a_service_accounts_tokens(persona, sandbox):
    owner = Actor(user=persona("developer"), environment=sandbox)
    account = service_account_create(actor=owner, username="svc-y", roles=["developer"])
    someone = persona("outsider")
    someone.groups.add(*owner.user.groups.filter(name="developer"))
    with pytest.raises(Exception, match="owned by"):
        token_issue(actor=Actor(user=someone, environment=sandbox), user=account.user, name="t")


def test_the_api_issues_a_service_accounts_token_through_the_selector(api, persona, sandbox):
    client = api("developer")
    service_account_create(actor=Actor(user=client.user, environment=sandbox), username="svc-crm", roles=["developer"])

    issued = client.post("/api/v1/tokens/", {"name": "crm", "service_account": "svc-crm"}, format="json")
    # a person is not a service account, and an unknown name is none either
    person = client.post("/api/v1/tokens/", {"name": "x", "service_account": "p-developer"}, format="json")
    unknown = client.post("/api/v1/tokens/", {"name": "x", "service_account": "svc-nope"}, format="json")

    assert issued.status_code == 201 and issued.json()["user"] == "svc-crm"
    assert (person.status_code, person.json()["code"]) == (422, "service_account_not_found")
    assert (unknown.status_code, unknown.json()["code"]) == (422, "service_account_not_found")
    assert "create_service_account" in unknown.json()["hint"]


def test_a_token_for_another_person_is_refused(persona, sandbox):
    with pytest.raises(Exception, match="yourself"):
        token_issue(actor=Actor(user=persona("developer"), environment=sandbox), user=persona("analyst"), name="t")


def test_expiry_is_capped(persona, sandbox):
    with pytest.raises(InvalidInput):
        token_issue(
            actor=Actor(user=persona("developer"), environment=sandbox),
            user=persona("developer"),
            name="t",
            expires_at=timezone.now() + timedelta(days=400),
        )


def test_token_rate_limits_may_be_lowered_but_only_admins_raise_them(api):
    developer = api("developer")
    bad = developer.post("/api/v1/tokens/", {"name": "x", "rate_limits": {"turbo": 5}}, format="json")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_rate_limits"
    lowered = developer.post("/api/v1/tokens/", {"name": "slow", "rate_limits": {"bulk": 5}}, format="json")
    assert lowered.status_code == 201 and lowered.json()["rate_limits"] == {"bulk": 5}
    raised = developer.post("/api/v1/tokens/", {"name": "fast", "rate_limits": {"bulk": 10_000}}, format="json")
    assert "admin" in refused(raised, 403, "permission_denied")["hint"]
    admin = api("admin")
    assert (
        admin.post("/api/v1/tokens/", {"name": "fast", "rate_limits": {"bulk": 10_000}}, format="json").status_code
        == 201
    )


def test_the_token_list_is_cursor_paginated_in_a_fixed_number_of_queries(api, django_assert_max_num_queries):
    client = api("admin")
    client.get("/api/v1/tokens/")  # the token's first use records last_used_at
    for i in range(5):
        client.post("/api/v1/tokens/", {"name": f"sync-{i}", "scopes": ["read"]}, format="json")

    # Token auth, roles and policy (cached or not) plus one query for the page, however many tokens.
    with django_assert_max_num_queries(8):
        page = client.get("/api/v1/tokens/", {"limit": 2})

    assert page.status_code == 200, page.content
    body = page.json()
    assert len(body["results"]) == 2 and body["next"]
    rest = client.get(body["next"]).json()
    names = [t["name"] for t in body["results"] + rest["results"]]
    assert names[:4] == ["sync-4", "sync-3", "sync-2", "sync-1"]
