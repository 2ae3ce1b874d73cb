"""Handing an audience to another team (issue 12, hole 1): its own action, service, endpoint
and audit event. A share of change lets another team edit an audience, never take it — not
through PATCH {"owner_team": …}, not through the transfer, not through the portal's editor."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from audiences.definitions.services import audience_transfer
from audiences.models import Audience
from governance.access.objectperms import share
from governance.models import AuditEvent, Outcome
from tests.factories import AudienceFactory, UserFactory, team
from tests.refusals import denied_event, refused

pytestmark = pytest.mark.django_db

URL = "/api/v1/audiences/"


def owner_of(audience: Audience) -> str:
    return Audience.objects.select_related("owner_team").get(pk=audience.pk).owner_team.name


# --- the hole: a share of change taking the audience -------------------------------------------------


def test_a_share_holder_cannot_take_the_audience_by_patching_owner_team(api, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Growth's", owner_team__name="growth")
    share(audience, team("retention"), "change")
    client = api("operator2")  # retention, holding only the share

    body = refused(
        client.patch(f"{URL}{audience.pk}", {"owner_team": "retention"}, format="json"), 400, "owner_team_read_only"
    )

    assert f"/api/v1/audiences/{audience.pk}/transfer" in body["hint"]
    assert body["errors"][0]["pointer"] == "/owner_team"
    assert owner_of(audience) == "growth"
    event = denied_event(client.user, "audience.transfer")
    assert event.changes["refused"] == {"owner_team": "retention", "through": "audience.edit"}
    assert not AuditEvent.objects.filter(action="audience.edit").exists()


def test_a_patch_with_an_owner_change_changes_nothing_else_either(api, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth", purpose="winback")
    share(audience, team("retention"), "change")

    response = api("operator2").patch(
        f"{URL}{audience.pk}", {"owner_team": "retention", "purpose": "mine now"}, format="json"
    )

    assert response.status_code == 400
    audience.refresh_from_db()
    assert audience.purpose == "winback" and owner_of(audience) == "growth"


def test_a_patch_naming_the_current_owner_is_harmless(api, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    share(audience, team("retention"), "change")

    response = api("operator2").patch(
        f"{URL}{audience.pk}", {"owner_team": "growth", "purpose": "shared work"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["owner_team"] == "growth" and response.json()["purpose"] == "shared work"


def test_even_the_owning_team_changes_the_owner_by_transfer_not_by_patch(api, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    team("retention")

    refused(
        api("operator").patch(f"{URL}{audience.pk}", {"owner_team": "retention"}, format="json"),
        400,
        "owner_team_read_only",
    )

    assert owner_of(audience) == "growth"


def test_a_share_holder_cannot_transfer(api, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    share(audience, team("retention"), "change")
    client = api("operator2")

    body = refused(
        client.post(f"{URL}{audience.pk}/transfer", {"team": "retention"}, format="json"), 403, "permission_denied"
    )

    assert "'growth'" in body["detail"] and body["rule"] == "object_permission"
    assert owner_of(audience) == "growth"
    denied_event(client.user, "audience.transfer")


def test_another_team_without_a_share_cannot_transfer(api, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    client = api("operator2")

    refused(client.post(f"{URL}{audience.pk}/transfer", {"team": "retention"}, format="json"), 403, "permission_denied")

    assert owner_of(audience) == "growth"
    denied_event(client.user, "audience.transfer")


def test_an_analyst_of_the_owning_team_cannot_transfer(api, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    team("retention")

    refused(
        api("analyst").post(f"{URL}{audience.pk}/transfer", {"team": "retention"}, format="json"),
        403,
        "permission_denied",
    )
    assert owner_of(audience) == "growth"


# --- the transfer ------------------------------------------------------------------------------------


def test_the_owning_team_hands_the_audience_on_and_the_transfer_is_audited(api, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    share(audience, team("retention"), "change")  # replaced by ownership
    share(audience, team("partners"), "view")  # kept
    client = api("operator")

    response = client.post(f"{URL}{audience.pk}/transfer", {"team": "retention"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["owner_team"] == "retention"
    assert body["shares"] == [{"team": "partners", "level": "view"}]
    event = AuditEvent.objects.get(action="audience.transfer")
    assert (event.outcome, event.actor_user_id, event.door) == (Outcome.ALLOWED, client.user.pk, "api")
    assert event.changes == {"before": {"owner_team": "growth"}, "after": {"owner_team": "retention"}}
    # The growth team may no longer change it: it is retention's now.
    refused(client.patch(f"{URL}{audience.pk}", {"purpose": "x"}, format="json"), 403, "permission_denied")


def test_an_admin_transfers_any_audience(api, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    team("retention")

    response = api("admin").post(f"{URL}{audience.pk}/transfer", {"team": "retention"}, format="json")

    assert response.status_code == 200 and owner_of(audience) == "retention"


def test_another_environment_s_audience_is_404(api, sandbox, pilot):
    audience = AudienceFactory(environment=pilot, owner_team__name="growth")
    team("retention")

    refused(
        api("admin").post(f"{URL}{audience.pk}/transfer", {"team": "retention"}, format="json"),
        404,
        "audience_not_found",
    )
    refused(
        api("operator").post(f"{URL}{audience.pk}/transfer", {"team": "retention"}, format="json"),
        404,
        "audience_not_found",
    )
    assert owner_of(audience) == "growth"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"team": "nosuch"}, 422, "invalid_input"),
        ({"team": "growth"}, 422, "invalid_input"),  # owns it already
        ({"team": "analyst"}, 422, "invalid_input"),  # a role is not a team
        ({}, 422, "invalid_input"),
        ({"team": "retention", "level": "change"}, 400, "unknown_fields"),
        (["retention"], 400, "invalid_request"),
    ],
)
def test_bad_transfers_are_refused_with_a_hint(api, sandbox, body, status, code):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    team("retention")

    refused(api("operator").post(f"{URL}{audience.pk}/transfer", body, format="json"), status, code)
    assert owner_of(audience) == "growth"
    assert not AuditEvent.objects.filter(action="audience.transfer", outcome=Outcome.ALLOWED).exists()


def test_an_archived_audience_is_not_transferred(api, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth", state="archived")
    team("retention")

    refused(
        api("operator").post(f"{URL}{audience.pk}/transfer", {"team": "retention"}, format="json"),
        409,
        "audience_archived",
    )


def test_the_service_is_the_same_for_every_door(actor, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    team("retention")

    moved = audience_transfer(actor=actor("operator", door="cli"), audience=audience, team="retention")

    assert moved.owner_team.name == "retention"
    assert AuditEvent.objects.get(action="audience.transfer").door == "cli"


# --- the admin site and the portal -----------------------------------------------------------------------


@pytest.fixture
def staff(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True, groups=["admin"]))
    return client


def _admin_form(audience, **overrides):
    data = {
        "name": audience.name,
        "channel": audience.channel,
        "purpose": audience.purpose,
        "description": audience.description,
        "rules": json.dumps(audience.rules),
        "_save": "Save",
    }
    data.update(overrides)
    return data


def test_the_admin_change_form_shows_the_owner_read_only_and_transfers_through_the_service(staff, sandbox):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    retention = team("retention")
    url = reverse("admin:audiences_audience_change", args=[audience.pk])

    page = staff.get(url).content.decode()
    assert 'name="owner_team"' not in page or "disabled" in page.split('name="owner_team"')[1].split(">")[0]
    # A posted owner_team is ignored (the field is disabled); transfer_to transfers.
    ignored = staff.post(url, _admin_form(audience, owner_team=retention.pk))
    assert ignored.status_code == 302 and owner_of(audience) == "growth"
    moved = staff.post(url, _admin_form(audience, transfer_to=retention.pk))

    assert moved.status_code == 302, moved.content.decode()[:2000]
    assert owner_of(audience) == "retention"
    event = AuditEvent.objects.get(action="audience.transfer")
    assert (event.door, event.changes["after"]) == ("admin", {"owner_team": "retention"})
