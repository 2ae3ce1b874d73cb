"""Copy an audience into my team as a draft (issue 11, item 9): the service
`audience_copy` and its doors — POST /api/v1/audiences/{id}/copy and the admin's action
(the portal's page is in tests/portal/test_copy_page.py) — and the policy's refusal on
another team's audience, which offers the copy because it exists."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audiences.definitions.services import audience_copy
from audiences.models import Audience, AudienceState
from governance.models import AuditEvent, OutboxEvent
from governance.policy.actions import ACTIONS
from tests.factories import AudienceFactory, AudienceVersionFactory, UserFactory, team

pytestmark = pytest.mark.django_db

RULES = {"all": [{"attr": "region", "op": "eq", "value": "EU"}, {"consent": "email", "is": True}]}


@pytest.fixture
def growths(sandbox):
    """Team growth's published audience in the sandbox."""
    audience = AudienceFactory(
        environment=sandbox,
        name="Spring EU buyers",
        owner_team=team("growth"),
        rules=RULES,
        purpose="spring sale",
        description="EU customers who may hear from us by email.",
    )
    AudienceVersionFactory(audience=audience, live=True)
    return Audience.objects.select_related("environment", "owner_team", "live_version").get(pk=audience.pk)


def test_another_teams_operator_copies_it_into_their_team_as_a_draft(api, growths):
    before = OutboxEvent.objects.count()
    client = api("operator2")  # team retention

    response = client.post(f"/api/v1/audiences/{growths.pk}/copy", {}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    copy = Audience.objects.get(pk=body["audience"]["id"])
    assert body["audience"]["name"] == "Spring EU buyers (copy)" == copy.name
    assert (copy.owner_team.name, copy.state, copy.live_version_id) == ("retention", AudienceState.DRAFT, None)
    assert (copy.rules, copy.channel, copy.purpose, copy.description) == (
        growths.rules,
        growths.channel,
        growths.purpose,
        growths.description,
    )
    assert copy.environment_id == growths.environment_id and copy.created_by == client.user
    assert not copy.versions.exists()  # never the members or the versions
    assert body["warnings"] == []
    event = AuditEvent.objects.get(action="audience.copy")
    assert (event.outcome, event.target_id, event.actor_user_id) == ("allowed", str(copy.pk), client.user.pk)
    assert event.changes["from"] == {"audience_id": growths.pk, "name": "Spring EU buyers", "owner_team": "growth"}
    assert OutboxEvent.objects.count() == before  # a new draft emits no domain event
    # the original is untouched, and the copy is the copier's to change
    growths.refresh_from_db()
    assert growths.owner_team.name == "growth" and growths.state == AudienceState.PUBLISHED
    edited = client.patch(f"/api/v1/audiences/{copy.pk}", {"purpose": "our version"}, format="json")
    assert edited.status_code == 200


def test_each_copy_gets_the_next_free_name_and_a_taken_name_says_which_is_free(api, growths):
    client = api("operator")
    first = client.post(f"/api/v1/audiences/{growths.pk}/copy", {}, format="json").json()["audience"]
    second = client.post(f"/api/v1/audiences/{growths.pk}/copy", {}, format="json").json()["audience"]
    assert (first["name"], second["name"]) == ("Spring EU buyers (copy)", "Spring EU buyers (copy 2)")

    events = AuditEvent.objects.count()
    clash = client.post(f"/api/v1/audiences/{growths.pk}/copy", {"name": "Spring EU buyers"}, format="json")

    assert clash.status_code == 409
    problem = clash.json()
    assert problem["code"] == "audience_name_taken"
    assert problem["hint"] == (
        "Give the copy another name, e.g. 'Spring EU buyers (copy 3)', or rename the audience named 'Spring EU buyers'."
    )
    assert problem["errors"][0]["pointer"] == "/name"
    assert AuditEvent.objects.count() == events  # nothing was made


def test_a_long_name_is_shortened_to_fit_with_its_copy_mark(actor, sandbox):
    long = AudienceFactory(environment=sandbox, name="x" * 120)

    copied = audience_copy(actor=actor("operator"), audience=long)

    assert copied.audience.name == "x" * 113 + " (copy)" and len(copied.audience.name) == 120


def test_the_team_must_be_one_of_yours(api, growths):
    client = api("operator2")

    mine_not = client.post(f"/api/v1/audiences/{growths.pk}/copy", {"team": "growth"}, format="json")
    unknown = client.post(f"/api/v1/audiences/{growths.pk}/copy", {"team": "nope"}, format="json")
    extra = client.post(f"/api/v1/audiences/{growths.pk}/copy", {"owner": "growth"}, format="json")

    assert mine_not.status_code == 403 and mine_not.json()["code"] == "not_team_member"
    assert mine_not.json()["errors"][0]["pointer"] == "/team"
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["pointer"] == "/team"
    assert extra.status_code == 400 and extra.json()["code"] == "unknown_fields"
    assert not Audience.objects.filter(name__endswith="(copy)").exists()


def test_someone_in_several_teams_names_one(actor, growths):
    from marketerapi.problems import InvalidInput

    person = actor("operator")
    person.user.groups.add(team("retention"))

    with pytest.raises(InvalidInput) as refused:
        audience_copy(actor=person, audience=growths)
    assert refused.value.errors[0]["pointer"] == "/team" and "growth, retention" in refused.value.errors[0]["hint"]

    assert audience_copy(actor=person, audience=growths, team="retention").audience.owner_team.name == "retention"


def test_an_admin_without_a_team_keeps_the_audiences_team(actor, growths):
    copied = audience_copy(actor=actor("admin"), audience=growths, name="Admin's copy")
    assert copied.audience.owner_team.name == "growth" and copied.audience.name == "Admin's copy"


def test_who_may_not_create_audiences_may_not_copy_and_the_refusal_is_audited(api, growths):
    response = api("analyst").post(f"/api/v1/audiences/{growths.pk}/copy", {}, format="json")

    assert response.status_code == 403
    problem = response.json()
    assert problem["code"] == "permission_denied"
    assert "Copy an audience into your team as a draft needs one of the roles: campaign_operator" in problem["detail"]
    assert AuditEvent.objects.get(action="audience.copy").outcome == "denied"


def test_an_audience_of_another_environment_is_not_found(api, pilot):
    other = AudienceFactory(environment=pilot, name="Pilot only")

    response = api("operator").post(f"/api/v1/audiences/{other.pk}/copy", {}, format="json")

    assert response.status_code == 404 and response.json()["code"] == "audience_not_found"


def test_a_condition_naming_an_archived_audience_is_copied_with_a_warning(actor, sandbox):
    gone = AudienceFactory(environment=sandbox, name="Gone", state=AudienceState.ARCHIVED)
    source = AudienceFactory(environment=sandbox, name="Uses gone", rules={"all": [{"not": {"in_audience": gone.pk}}]})

    copied = audience_copy(actor=actor("operator"), audience=source)

    assert copied.audience.rules == source.rules
    assert [(w["pointer"], w["code"]) for w in copied.warnings] == [
        ("/rules/all/0/not/in_audience", "audience_archived")
    ]


# --- the refusal on another team's audience offers the copy --------------------------------------------


def test_the_refusal_on_another_teams_audience_offers_the_copy_and_the_copy_works(api, growths):
    client = api("operator2")

    refused = client.patch(f"/api/v1/audiences/{growths.pk}", {"purpose": "mine"}, format="json").json()

    assert refused["code"] == "permission_denied" and refused["rule"] == "object_permission"
    assert refused["hint"] == (
        "Ask the growth team (or an admin) to share it with you, or copy it into your team as a draft and work on "
        f"the copy (Copy on its page in the portal; POST /api/v1/audiences/{growths.pk}/copy)."
    )
    assert client.post(f"/api/v1/audiences/{growths.pk}/copy", {}, format="json").status_code == 201


def test_no_refusal_offers_a_copy_where_no_copy_action_exists(api, growths, monkeypatch):
    monkeypatch.delitem(ACTIONS, "audience.copy")

    refused = api("operator2").patch(f"/api/v1/audiences/{growths.pk}", {"purpose": "mine"}, format="json").json()

    assert refused["hint"] == "Ask the growth team (or an admin) to share it with you."


# --- the admin's action -----------------------------------------------------------------------------------


def test_the_admin_action_copies_each_selected_audience(client, growths, sandbox):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True, groups=["admin", "retention"])
    client.force_login(admin)
    archived = AudienceFactory(environment=sandbox, name="Old list", state=AudienceState.ARCHIVED)

    response = client.post(
        reverse("admin:audiences_audience_changelist"),
        {"action": "copy_into_my_team", "_selected_action": [growths.pk, archived.pk]},
        follow=True,
    )

    text = response.content.decode()
    copy = Audience.objects.get(name="Spring EU buyers (copy)")
    assert f"Spring EU buyers: copied as the draft &#x27;Spring EU buyers (copy)&#x27; (id {copy.pk})" in text
    assert copy.owner_team.name == "retention" and copy.state == AudienceState.DRAFT
    assert Audience.objects.get(name="Old list (copy)").state == AudienceState.DRAFT
    assert set(AuditEvent.objects.filter(action="audience.copy").values_list("door", flat=True)) == {"admin"}


def test_a_copy_is_a_creation_in_the_audit_export():
    from governance.audit.exports import ocsf_activity

    assert ocsf_activity("audience.copy") == (1, "Create")
