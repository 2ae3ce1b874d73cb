"""The campaigns API: create, read, edit, delete; bad input refused with hints and nothing
written; readiness; activation through the door; the list's fixed query count."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Send
from governance.models import AuditEvent
from tests.campaigns.support import ASSETS, audience_with, campaign_for, drop, people
from tests.factories import DestinationFactory


@pytest.fixture
def setup(api, sandbox, tmp_path):
    client = api("operator")
    audience = audience_with(sandbox, people(sandbox, "eu", 3))
    destination = drop(sandbox, str(tmp_path))
    body = {
        "name": "Winback",
        "owner_team": "growth",
        "purpose": "winback",
        "channel": "email",
        "audience": audience.pk,
        "destination": destination.pk,
        "assets": dict(ASSETS),
    }
    return client, audience, destination, body


def test_create_read_edit_delete(setup):
    client, _audience, _destination, body = setup
    created = client.post("/api/v1/campaigns/", body, format="json")
    assert created.status_code == 201, created.json()
    campaign = created.json()
    assert campaign["state"] == "draft" and campaign["owner_team"] == "growth"
    assert client.get(f"/api/v1/campaigns/{campaign['id']}").json()["name"] == "Winback"
    edited = client.patch(f"/api/v1/campaigns/{campaign['id']}", {"purpose": "spring"}, format="json")
    assert edited.status_code == 200 and edited.json()["purpose"] == "spring"
    assert client.delete(f"/api/v1/campaigns/{campaign['id']}").status_code == 204
    assert not Campaign.objects.exists()
    assert list(
        AuditEvent.objects.filter(action__startswith="campaign.").order_by("id").values_list("action", flat=True)
    ) == ["campaign.create", "campaign.edit", "campaign.delete"]


def test_list_has_a_fixed_number_of_queries(setup, django_assert_max_num_queries, actor):
    client, audience, destination, _body = setup
    operator = actor("admin")
    for n in range(12):
        campaign_for(operator, audience, destination, name=f"c{n}")
    with django_assert_max_num_queries(12):
        listed = client.get("/api/v1/campaigns/?limit=5")
    assert listed.status_code == 200 and len(listed.json()["results"]) == 5


@pytest.mark.parametrize(
    ("change", "pointer", "code", "hint_has"),
    [
        ({"assets": {**ASSETS, "body": "Hi {{frist_name}}"}}, "/assets/body", "unknown_merge_field", "first_name"),
        ({"schedule_at": "2020-01-01T09:00:00Z"}, "/schedule_at", "schedule_in_past", "future"),
        ({"channel": "sms"}, "/audience", "audience_channel_mismatch", "sms"),
    ],
)
def test_bad_input_is_a_problem_with_a_hint_and_nothing_is_written(setup, change, pointer, code, hint_has):
    client, _audience, _destination, body = setup
    refused = client.post("/api/v1/campaigns/", {**body, **change}, format="json")
    assert refused.status_code == 422, refused.json()
    problem = refused.json()
    assert problem["code"] == "invalid_input"
    entry = next(e for e in problem["errors"] if e["code"] == code)
    assert entry["pointer"] == pointer and hint_has in (entry["hint"] + entry["message"])
    assert not Campaign.objects.exists()
    assert not AuditEvent.objects.filter(action="campaign.create").exists()


def test_a_destination_that_cannot_send_the_channel_is_refused(setup, sandbox):
    client, _audience, _destination, body = setup
    # The crm adapter sends email only: an sms audience through it is refused with a hint.
    sms = audience_with(sandbox, people(sandbox, "sms", 1, channel="sms"), channel="sms")
    crm = DestinationFactory(environment=sandbox, adapter="crm", config={})
    refused = client.post(
        "/api/v1/campaigns/", {**body, "channel": "sms", "audience": sms.pk, "destination": crm.pk}, format="json"
    )
    assert refused.status_code == 422
    entry = next(e for e in refused.json()["errors"] if e["code"] == "channel_not_supported")
    assert entry["pointer"] == "/destination" and "destination" in entry["hint"]
    assert not Campaign.objects.exists()


def test_readiness_lists_every_check(setup):
    client, _audience, _destination, body = setup
    campaign = client.post("/api/v1/campaigns/", body, format="json").json()
    readiness = client.get(f"/api/v1/campaigns/{campaign['id']}/readiness").json()
    assert readiness["ready"] is True
    codes = [c["code"] for c in readiness["checks"]]
    for code in (
        "audience_published",
        "audience_not_empty",
        "consent_coverage",
        "assets_complete",
        "merge_fields_known",
        "destination_channel",
        "destination_healthy",
        "channel_flag",
        "quota",
        "change_window",
        "recipient_estimate",
    ):
        assert code in codes
    assert readiness["estimate"]["recipients"] == 3


def test_activate_through_the_api_and_read_the_sends(setup, django_capture_on_commit_callbacks, eager_celery):
    client, _audience, _destination, body = setup
    campaign = client.post("/api/v1/campaigns/", body, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        accepted = client.post(f"/api/v1/campaigns/{campaign['id']}/activate", HTTP_IDEMPOTENCY_KEY="k-1")
    assert accepted.status_code == 202, accepted.json()
    assert accepted.json()["job"]["id"]
    again = client.post(f"/api/v1/campaigns/{campaign['id']}/activate", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 202 and again.json() == accepted.json()
    stats = client.get(f"/api/v1/campaigns/{campaign['id']}/sends").json()
    assert stats["sent"] == 3 and stats["state"] == "completed"
    assert Send.objects.count() == 3
    second = client.post(f"/api/v1/campaigns/{campaign['id']}/activate")
    assert second.status_code == 409 and second.json()["code"] == "campaign_state_conflict"


def test_empty_audience_refuses_activation_with_hints(api, sandbox, tmp_path, actor):
    client = api("operator")
    campaign = campaign_for(actor("admin"), audience_with(sandbox, []), drop(sandbox, str(tmp_path)))
    refused = client.post(f"/api/v1/campaigns/{campaign.pk}/activate")
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "campaign_not_ready"
    assert {"audience_not_empty", "recipient_estimate"} <= {e["code"] for e in problem["errors"]}
    assert all(e["hint"] for e in problem["errors"])
    assert not Send.objects.exists()


def test_a_schedule_waits_for_the_beat(setup, actor, settings):
    client, _audience, _destination, body = setup
    from waffle.models import Flag

    Flag.objects.update_or_create(name="campaign_scheduling", defaults={"everyone": True})
    soon = timezone.now() + timedelta(hours=1)
    campaign = client.post("/api/v1/campaigns/", {**body, "schedule_at": soon.isoformat()}, format="json").json()
    accepted = client.post(f"/api/v1/campaigns/{campaign['id']}/activate")
    assert accepted.status_code == 202 and accepted.json()["job"] is None
    assert accepted.json()["campaign"]["state"] == "scheduled"
    from campaigns.sending.services import campaign_start_due

    assert campaign_start_due() == []
    assert campaign_start_due(now=soon + timedelta(seconds=1)) == [campaign["id"]]
    assert Campaign.objects.get(pk=campaign["id"]).state == "active"


def test_sharing_change_lets_another_team_edit_only_the_owners_share(setup, api):
    client, _audience, _destination, body = setup
    campaign = client.post("/api/v1/campaigns/", body, format="json").json()
    other = api("operator2")  # retention
    refused = other.patch(f"/api/v1/campaigns/{campaign['id']}", {"purpose": "theirs"}, format="json")
    assert refused.status_code == 403 and "growth" in refused.json()["detail"]
    shared = client.post(
        f"/api/v1/campaigns/{campaign['id']}/share", {"team": "retention", "level": "change"}, format="json"
    )
    assert shared.status_code == 200
    assert other.patch(f"/api/v1/campaigns/{campaign['id']}", {"purpose": "theirs"}, format="json").status_code == 200
    passed_on = other.post(
        f"/api/v1/campaigns/{campaign['id']}/share", {"team": "other", "level": "view"}, format="json"
    )
    assert passed_on.status_code == 403


def test_a_schedule_without_an_offset_is_in_the_environments_time_zone(setup, sandbox):
    client, _audience, _destination, body = setup
    sandbox.time_zone = "Europe/Paris"
    sandbox.save(update_fields=["time_zone"])
    created = client.post("/api/v1/campaigns/", {**body, "schedule_at": "2099-06-01T09:00:00"}, format="json")
    assert created.status_code == 201, created.json()
    assert Campaign.objects.get(pk=created.json()["id"]).schedule_at.isoformat() == "2099-06-01T07:00:00+00:00"
