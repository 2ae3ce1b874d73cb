"""Audience definitions through the API: create, list, read, edit, delete; every bad input,
who may and who may not, the audit events and the query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.models import Audience, AudienceState
from governance.access.objectperms import share
from governance.models import AuditEvent
from tests.audiences.audience_helpers import create_body
from tests.factories import AudienceFactory, AudienceVersionFactory, ProfileFactory, team

pytestmark = pytest.mark.django_db

URL = "/api/v1/audiences/"


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    assert body["hint"] and body["request_id"]
    return body


# --- create ---------------------------------------------------------------------------------


def test_an_operator_creates_a_draft_audience_for_their_team(api, sandbox):
    client = api("operator")

    response = client.post(URL, create_body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == f"/api/v1/audiences/{body['id']}"
    assert body["state"] == "draft"
    assert body["owner_team"] == "growth"
    assert body["environment"] == "sandbox"
    assert body["created_by"] == "p-operator"
    assert body["live_version"] is None
    assert body["shares"] == []
    audience = Audience.objects.get(pk=body["id"])
    assert audience.environment == sandbox
    event = AuditEvent.objects.get(action="audience.create")
    assert (event.outcome, event.target_id, event.actor_label) == ("allowed", str(audience.pk), "p-operator")
    assert event.changes["after"]["name"] == "Lapsed EU customers"
    assert event.changes["after"]["rules"] == audience.rules


def test_owner_team_defaults_to_the_only_team(api):
    response = api("operator").post(URL, create_body(owner_team=None), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["owner_team"] == "growth"


def test_an_admin_may_give_the_audience_to_any_team(api):
    team("retention")

    response = api("admin").post(URL, create_body(owner_team="retention"), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["owner_team"] == "retention"


def test_an_admin_without_a_team_must_name_one(api):
    body = problem(api("admin").post(URL, create_body(owner_team=None), format="json"), 422, "invalid_input")

    assert body["errors"][0]["pointer"] == "/owner_team"


def test_unknown_team_is_422_and_a_role_is_no_team(api):
    client = api("operator")

    unknown = problem(client.post(URL, create_body(owner_team="growht"), format="json"), 422, "invalid_input")
    role = problem(client.post(URL, create_body(owner_team="analyst"), format="json"), 422, "invalid_input")

    assert unknown["errors"][0] == {
        "pointer": "/owner_team",
        "code": "unknown_team",
        "message": "There is no team 'growht'.",
        "hint": "Use one of: growth. Teams are groups; roles such as analyst are not teams.",
    }
    assert role["errors"][0]["code"] == "unknown_team"
    assert not Audience.objects.exists()


def test_a_team_the_operator_is_not_in_is_refused(api):
    team("retention")

    body = problem(
        api("operator").post(URL, create_body(owner_team="retention"), format="json"), 403, "not_team_member"
    )

    assert "growth" in body["hint"]


def test_unknown_fields_are_400_and_nothing_is_saved(api):
    response = api("operator").post(URL, {**create_body(), "colour": "red", "segment": 1}, format="json")

    body = problem(response, 400, "unknown_fields")
    assert [e["pointer"] for e in body["errors"]] == ["/colour", "/segment"]
    assert "rules" in body["allowed_fields"]
    assert not Audience.objects.exists()


@pytest.mark.parametrize(
    ("change", "pointer", "code"),
    [
        ({"name": None}, "/name", "required"),
        ({"name": ""}, "/name", "blank"),
        ({"name": "x" * 121}, "/name", "max_length"),
        ({"channel": "fax"}, "/channel", "invalid_choice"),
        ({"purpose": None}, "/purpose", "required"),
        ({"description": ""}, "/description", "blank"),
        ({"rules": None}, "/rules", "required"),
    ],
)
def test_missing_and_bad_metadata_are_422_with_a_pointer(api, change, pointer, code):
    body = problem(api("operator").post(URL, create_body(**change), format="json"), 422, "invalid_input")

    assert {(e["pointer"], e["code"]) for e in body["errors"]} == {(pointer, code)}
    assert not Audience.objects.exists()


def test_a_body_that_is_not_an_object_is_400(api):
    problem(api("operator").post(URL, [1, 2], format="json"), 400, "invalid_request")


def test_invalid_rules_list_every_problem_with_a_pointer_under_rules(api):
    rules = {
        "all": [
            {"attr": "regoin", "op": "eq", "value": "EU"},
            {"attr": "region", "op": "gt", "value": "EU"},
            {"attr": "lifecycle_stage", "op": "in", "value": ["customer", "lapsd"]},
            {"consent": "fax", "is": True},
        ]
    }

    body = problem(api("operator").post(URL, create_body(rules=rules), format="json"), 422, "invalid_rules")

    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("/rules/all/0/attr", "unknown_attribute"),
        ("/rules/all/1/op", "operator_not_allowed"),
        ("/rules/all/2/value/1", "unknown_value"),
        ("/rules/all/3/consent", "unknown_channel"),
    ]
    assert "did you mean 'region'" in body["errors"][0]["message"]
    assert all(e["hint"] for e in body["errors"])
    assert not Audience.objects.exists()


MISSPELT = {"all": [{"attr": "regoin", "op": "eq", "value": "EU"}]}


def test_a_bad_value_and_bad_rules_are_reported_together_in_one_422(api):
    """A missing channel no longer hides the rules' problems (issue 11, item 8): one
    invalid_input lists both, the rule problem with its did-you-mean."""
    response = api("operator").post(URL, create_body(channel=None, purpose="", rules=MISSPELT), format="json")

    body = problem(response, 422, "invalid_input")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("/channel", "required"),
        ("/purpose", "blank"),
        ("/rules/all/0/attr", "unknown_attribute"),
    ]
    assert "did you mean 'region'" in body["errors"][2]["message"]
    assert body["detail"].startswith("3 problems in the request") and "1 of them in the rules" in body["detail"]
    assert not Audience.objects.exists()
    assert not AuditEvent.objects.exists()


def test_an_unknown_team_and_bad_rules_are_reported_together(api):
    # the team is checked by the service, after the serializer: the same one answer
    response = api("operator").post(URL, create_body(owner_team="nope", rules=MISSPELT), format="json")

    body = problem(response, 422, "invalid_input")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("/owner_team", "unknown_team"),
        ("/rules/all/0/attr", "unknown_attribute"),
    ]
    assert not Audience.objects.exists()


def test_an_edit_reports_a_bad_channel_and_bad_rules_together(api, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Edited")

    response = api("operator").patch(f"{URL}{audience.pk}", {"channel": "fax", "rules": MISSPELT}, format="json")

    body = problem(response, 422, "invalid_input")
    assert [e["pointer"] for e in body["errors"]] == ["/channel", "/rules/all/0/attr"]
    audience.refresh_from_db()
    assert audience.channel == "email"


def test_blank_name_purpose_and_description_are_all_named_by_the_service(actor, sandbox):
    from audiences.definitions import services

    with pytest.raises(Exception) as refused:
        services.audience_create(
            actor=actor("operator"), name=" ", channel="fax", purpose="", description="x", rules=MISSPELT
        )

    assert refused.value.code == "invalid_input"
    assert [e["pointer"] for e in refused.value.errors] == ["/name", "/purpose", "/channel", "/rules/all/0/attr"]


def test_rules_that_are_not_an_object_point_at_rules(api):
    body = problem(api("operator").post(URL, create_body(rules=[1]), format="json"), 422, "invalid_rules")

    assert body["errors"][0]["pointer"] == "/rules"


def test_in_audience_must_name_a_published_audience_of_the_same_environment(api, sandbox, production):
    elsewhere = AudienceVersionFactory(
        audience=AudienceFactory(environment=production, name="VIP"), live=True
    )  # published, but in production
    draft = AudienceFactory(environment=sandbox, name="Draft only")
    live = AudienceFactory(environment=sandbox, name="VIP sandbox")
    AudienceVersionFactory(audience=live, live=True)
    rules = {
        "all": [
            {"in_audience": elsewhere.audience_id},
            {"not": {"in_audience": draft.pk}},
            {"in_audience": live.pk},
        ]
    }

    body = problem(api("operator").post(URL, create_body(rules=rules), format="json"), 422, "invalid_rules")

    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("/rules/all/0/in_audience", "audience_not_found"),
        ("/rules/all/1/not/in_audience", "audience_not_published"),
    ]


def test_in_audience_to_an_archived_audience_says_so(api, sandbox):
    archived = AudienceFactory(environment=sandbox, name="Old")
    AudienceVersionFactory(audience=archived, live=True)
    archived.state = AudienceState.ARCHIVED
    archived.save()

    body = problem(
        api("operator").post(URL, create_body(rules={"in_audience": archived.pk}), format="json"), 422, "invalid_rules"
    )

    assert body["errors"][0]["code"] == "audience_archived"


def test_a_cycle_through_in_audience_is_refused_on_edit(api, sandbox):
    first = AudienceFactory(environment=sandbox, name="First")
    AudienceVersionFactory(audience=first, live=True)
    second = AudienceFactory(environment=sandbox, name="Second", rules={"in_audience": first.pk})
    AudienceVersionFactory(audience=second, live=True)  # second's live version refers to first

    response = api("operator").patch(f"{URL}{first.pk}", {"rules": {"in_audience": second.pk}}, format="json")

    body = problem(response, 422, "invalid_rules")
    assert ("/rules", "audience_cycle") in [(e["pointer"], e["code"]) for e in body["errors"]]
    first.refresh_from_db()
    assert first.rules == {"all": [{"attr": "region", "op": "in", "value": ["EU"]}]}


def test_a_name_is_unique_per_environment(api, sandbox, production):
    AudienceFactory(environment=sandbox, name="Lapsed EU customers")
    AudienceFactory(environment=production, name="Taken in production only")

    clash = problem(api("operator").post(URL, create_body(), format="json"), 409, "audience_name_taken")
    fine = api("operator").post(URL, create_body(name="Taken in production only"), format="json")

    assert clash["errors"][0]["pointer"] == "/name"
    assert clash["existing_audience_id"] == Audience.objects.get(environment=sandbox, name="Lapsed EU customers").pk
    assert fine.status_code == 201


@pytest.mark.parametrize("who", ["analyst", "approver", "compliance"])
def test_roles_without_authoring_cannot_create(api, who):
    body = problem(api(who).post(URL, create_body(), format="json"), 403, "permission_denied")

    assert "campaign_operator" in body["hint"]
    assert not Audience.objects.exists()
    denied = AuditEvent.objects.get(action="audience.create")
    assert denied.outcome == "denied"


def test_developers_author_in_a_sandbox_only(api, pilot):
    assert api("developer").post(URL, create_body(), format="json").status_code == 201

    body = problem(api("developer", pilot).post(URL, create_body(), format="json"), 403, "permission_denied")
    assert body["rule"] == "role_environment"


def test_a_read_only_token_cannot_create(api, persona, sandbox):
    from rest_framework.test import APIClient

    from tests.conftest import issue_test_token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_test_token(persona('operator'), sandbox, ['read'])}")

    body = problem(client.post(URL, create_body(), format="json"), 403, "permission_denied")
    assert body["rule"] == "token_scope"


# --- list and read ----------------------------------------------------------------------------


@pytest.fixture
def several(sandbox, production):
    AudienceFactory(environment=sandbox, name="EU email", owner_team__name="growth", channel="email")
    AudienceFactory(environment=sandbox, name="UK sms", owner_team__name="retention", channel="sms")
    live = AudienceFactory(environment=sandbox, name="VIP push", owner_team__name="growth", channel="push")
    AudienceVersionFactory(audience=live, live=True)
    AudienceFactory(environment=production, name="Production only")
    return live


def _names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


def test_everyone_in_the_environment_lists_its_audiences_newest_first(api, several):
    assert _names(api("analyst").get(URL)) == ["VIP push", "UK sms", "EU email"]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("team=growth", ["VIP push", "EU email"]),
        ("state=published", ["VIP push"]),
        ("channel=sms", ["UK sms"]),
        ("q=eu", ["EU email"]),
        ("q=vip&state=draft", []),
    ],
)
def test_list_filters(api, several, query, names):
    assert _names(api("analyst").get(f"{URL}?{query}")) == names


def test_unknown_filters_and_bad_choices_are_400(api):
    client = api("analyst")

    problem(client.get(f"{URL}?teem=growth"), 400, "unknown_query_parameter")
    assert client.get(f"{URL}?state=gone").status_code == 400


def test_the_list_is_cursor_paginated(api, sandbox):
    for index in range(5):
        AudienceFactory(environment=sandbox, name=f"A{index}")
    client = api("analyst")

    first = client.get(f"{URL}?limit=2").json()
    second = client.get(first["next"]).json()

    assert [r["name"] for r in first["results"]] == ["A4", "A3"]
    assert [r["name"] for r in second["results"]] == ["A2", "A1"]


def test_listing_takes_the_same_number_of_queries_for_2_and_20_audiences(api, sandbox):
    client = api("analyst")
    client.get(URL)  # warm the caches every request shares (token, roles)
    for index in range(2):
        AudienceFactory(environment=sandbox, name=f"Small {index}", published=True)

    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    for index in range(18):
        AudienceFactory(environment=sandbox, name=f"More {index}", published=True)
    with CaptureQueriesContext(connection) as many:
        response = client.get(URL)

    assert len(response.json()["results"]) == 20
    assert len(many) == len(few)
    page_queries = [q["sql"] for q in many.captured_queries if "audiences_audience" in q["sql"]]
    assert len(page_queries) == 1, page_queries


def test_list_query_count(api, sandbox, django_assert_num_queries):
    client = api("analyst")
    for index in range(3):
        AudienceFactory(environment=sandbox, name=f"A{index}", published=True)
    client.get(URL)  # the token, roles and permissions are cached after the first request

    # one page with owner team, creator and live version joined
    with django_assert_num_queries(1):
        client.get(URL)
    with django_assert_num_queries(1):
        client.get(f"{URL}?team=growth&channel=email&state=published&q=a")


def test_get_shows_the_audience_with_its_shares(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    share(audience, team("retention"), "change")

    body = api("analyst").get(f"{URL}{audience.pk}").json()

    assert body["name"] == "EU customers"
    assert body["shares"] == [{"team": "retention", "level": "change"}]


def test_an_audience_of_another_environment_is_404(api, production):
    audience = AudienceFactory(environment=production)
    client = api("admin")

    for response in (
        client.get(f"{URL}{audience.pk}"),
        client.patch(f"{URL}{audience.pk}", {"description": "x"}, format="json"),
        client.delete(f"{URL}{audience.pk}"),
        client.post(f"{URL}{audience.pk}/preview"),
        client.post(f"{URL}{audience.pk}/validate"),
        client.post(f"{URL}{audience.pk}/share", {"team": "retention", "level": "view"}, format="json"),
        client.post(f"{URL}{audience.pk}/promote", {"environment": "sandbox"}, format="json"),
    ):
        problem(response, 404, "audience_not_found")


def test_paths_answer_with_and_without_a_trailing_slash(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    client = api("analyst")

    assert client.get("/api/v1/audiences").status_code == 200
    assert client.get(f"/api/v1/audiences/{audience.pk}/").status_code == 200


# --- edit ---------------------------------------------------------------------------------------


def test_the_owning_team_edits_and_the_audit_has_before_and_after(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    new_rules = {"attr": "region", "op": "eq", "value": "UK"}

    response = api("operator").patch(
        f"{URL}{audience.pk}", {"description": "UK now", "rules": new_rules}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["rules"] == new_rules
    event = AuditEvent.objects.get(action="audience.edit")
    assert event.changes["fields"] == ["description", "rules"]
    assert event.changes["before"]["description"] == "EU customers, for tests."
    assert event.changes["after"] == {"description": "UK now", "rules": new_rules}


def test_an_edit_that_changes_nothing_writes_no_audit_event(api, sandbox):
    audience = AudienceFactory(environment=sandbox)

    response = api("operator").patch(f"{URL}{audience.pk}", {"purpose": "winback"}, format="json")

    assert response.status_code == 200
    assert not AuditEvent.objects.filter(action="audience.edit").exists()


def test_another_team_cannot_edit_until_shared_and_the_403_names_the_team(api, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Growth's", owner_team__name="growth")
    client = api("operator2")

    refused = problem(client.patch(f"{URL}{audience.pk}", {"purpose": "mine"}, format="json"), 403, "permission_denied")
    assert "'growth'" in refused["detail"]
    assert refused["rule"] == "object_permission"
    assert AuditEvent.objects.get(action="audience.edit").outcome == "denied"

    share(audience, team("retention"), "change")
    allowed = client.patch(f"{URL}{audience.pk}", {"purpose": "mine"}, format="json")
    assert allowed.status_code == 200, allowed.content


def test_a_share_of_view_does_not_allow_editing(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    share(audience, team("retention"), "view")

    problem(api("operator2").patch(f"{URL}{audience.pk}", {"purpose": "x"}, format="json"), 403, "permission_denied")


def test_an_admin_edits_any_team_s_audience(api, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="retention")

    assert api("admin").patch(f"{URL}{audience.pk}", {"purpose": "admin fix"}, format="json").status_code == 200


def test_an_analyst_cannot_edit(api, sandbox):
    audience = AudienceFactory(environment=sandbox)

    problem(api("analyst").patch(f"{URL}{audience.pk}", {"purpose": "x"}, format="json"), 403, "permission_denied")


def test_renaming_onto_a_taken_name_is_409(api, sandbox):
    AudienceFactory(environment=sandbox, name="Taken")
    audience = AudienceFactory(environment=sandbox, name="Mine")

    problem(api("operator").patch(f"{URL}{audience.pk}", {"name": "Taken"}, format="json"), 409, "audience_name_taken")


def test_edit_refuses_unknown_fields_and_state(api, sandbox):
    audience = AudienceFactory(environment=sandbox)

    body = problem(
        api("operator").patch(f"{URL}{audience.pk}", {"state": "published"}, format="json"), 400, "unknown_fields"
    )
    assert body["errors"][0]["pointer"] == "/state"


def test_handing_an_audience_to_another_team_by_an_edit_is_refused(api, sandbox):
    # The owner changes only by POST …/transfer (tests/audiences/test_transfer.py, issue 12).
    audience = AudienceFactory(environment=sandbox)
    team("retention")

    body = problem(
        api("operator").patch(f"{URL}{audience.pk}", {"owner_team": "retention"}, format="json"),
        400,
        "owner_team_read_only",
    )
    assert "/transfer" in body["hint"]


def test_an_archived_audience_cannot_be_edited(api, sandbox):
    audience = AudienceFactory(environment=sandbox, state=AudienceState.ARCHIVED)

    problem(api("operator").patch(f"{URL}{audience.pk}", {"purpose": "x"}, format="json"), 409, "audience_archived")


def test_editing_a_published_audience_keeps_its_live_version(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    version = AudienceVersionFactory(
        audience=audience, live=True, memberships=[ProfileFactory(environment=sandbox, region="EU")]
    )

    response = api("operator").patch(
        f"{URL}{audience.pk}", {"rules": {"attr": "region", "op": "eq", "value": "UK"}}, format="json"
    )

    assert response.json()["state"] == "published"
    assert response.json()["live_version"] == {"id": version.pk, "number": 1}


# --- delete -------------------------------------------------------------------------------------------


def test_deleting_a_draft_deletes_it_and_its_shares_and_is_audited(api, sandbox):
    from guardian.models import GroupObjectPermission

    audience = AudienceFactory(environment=sandbox)
    share(audience, team("retention"), "change")
    pk = audience.pk

    response = api("operator").delete(f"{URL}{pk}")

    assert response.status_code == 204
    assert not Audience.objects.filter(pk=pk).exists()
    assert not GroupObjectPermission.objects.filter(object_pk=str(pk)).exists()
    event = AuditEvent.objects.get(action="audience.delete")
    assert (event.target_id, event.target_label) == (str(pk), "EU customers")
    assert event.changes["before"]["name"] == "EU customers"


def test_another_team_cannot_delete(api, sandbox):
    audience = AudienceFactory(environment=sandbox)

    problem(api("operator2").delete(f"{URL}{audience.pk}"), 403, "permission_denied")
    assert Audience.objects.filter(pk=audience.pk).exists()


def test_a_published_audience_is_archived_in_a_sandbox_at_once(api, sandbox):
    from governance.models import OutboxEvent

    audience = AudienceFactory(environment=sandbox)
    AudienceVersionFactory(audience=audience, live=True)

    response = api("operator").delete(f"{URL}{audience.pk}")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "archived"
    audience.refresh_from_db()
    assert audience.state == "archived" and audience.live_version_id is not None
    event = AuditEvent.objects.get(action="audience.archive")
    assert event.changes == {"before": {"state": "published"}, "after": {"state": "archived"}}
    outbox = OutboxEvent.objects.get(type="audience.archived")
    assert outbox.data["name"] == "EU customers" and outbox.data["by"] == "p-operator"


def test_deleting_an_archived_audience_is_409(api, sandbox):
    audience = AudienceFactory(environment=sandbox, state=AudienceState.ARCHIVED)

    problem(api("operator").delete(f"{URL}{audience.pk}"), 409, "audience_archived")


def test_deleting_an_archived_audience_checks_permission_before_state(api, persona, sandbox, pilot):
    from tests.refusals import denied_event, refused

    audience = AudienceFactory(environment=sandbox, state=AudienceState.ARCHIVED)

    # another team, and a role that may not archive at all: 403 (audited), never 409
    refused(api("operator2").delete(f"{URL}{audience.pk}"), 403, "permission_denied")
    denied_event(persona("operator2"), "audience.archive")
    assert api("analyst").delete(f"{URL}{audience.pk}").status_code == 403
    # another environment's audience: 404
    elsewhere = AudienceFactory(environment=pilot, state=AudienceState.ARCHIVED)
    assert api("operator").delete(f"{URL}{elsewhere.pk}").status_code == 404
    # the owning team: now the state
    problem(api("operator").delete(f"{URL}{audience.pk}"), 409, "audience_archived")


def test_an_audience_another_uses_is_neither_deleted_nor_archived(api, sandbox):
    used = AudienceFactory(environment=sandbox, name="Used")
    AudienceVersionFactory(audience=used, live=True)
    AudienceFactory(environment=sandbox, name="User", rules={"not": {"in_audience": used.pk}})

    body = problem(api("operator").delete(f"{URL}{used.pk}"), 409, "audience_in_use")

    assert body["used_by"] == ["audience 'User' (in_audience)"]
    used.refresh_from_db()
    assert used.state == "published"


def test_registered_in_use_checks_block_deletion(api, sandbox, monkeypatch):
    from audiences.definitions import services as audience_services

    monkeypatch.setattr(audience_services, "_IN_USE_CHECKS", [])
    audience_services.register_in_use_check(lambda audience: ["campaign 'Spring sale' (active)"])
    audience = AudienceFactory(environment=sandbox)

    body = problem(api("operator").delete(f"{URL}{audience.pk}"), 409, "audience_in_use")

    assert "Spring sale" in body["detail"]
    assert Audience.objects.filter(pk=audience.pk).exists()


def test_the_outsider_sees_but_cannot_change_and_never_reaches_across_environments(api, sandbox, production):
    audience = AudienceFactory(environment=sandbox)
    here, there = api("outsider"), api("outsider", production)

    assert here.get(f"{URL}{audience.pk}").status_code == 200
    refused = problem(here.patch(f"{URL}{audience.pk}", {"purpose": "x"}, format="json"), 403, "permission_denied")
    assert "'growth'" in refused["detail"]
    problem(there.get(f"{URL}{audience.pk}"), 404, "audience_not_found")
    assert _names(there.get(URL)) == []
