"""Sharing audiences between teams, archiving under the approval policy, and promoting a
definition into another environment."""

from __future__ import annotations

import pytest

from audiences.models import Audience, Membership
from governance.actors import Actor
from governance.approvals import approval_approve, approval_execute
from governance.models import ApprovalRequest, AuditEvent, Door, OutboxEvent
from tests.factories import AudienceFactory, AudienceVersionFactory, ProfileFactory, UserFactory, team
from tests.refusals import denied_event, refused

pytestmark = pytest.mark.django_db


def url(audience: Audience, suffix: str = "") -> str:
    return f"/api/v1/audiences/{audience.pk}" + (f"/{suffix}" if suffix else "")


def code_of(response) -> tuple[int, str]:
    return response.status_code, response.json().get("code", "") if response.content else ""


# --- share ----------------------------------------------------------------------------------


def test_the_owning_team_shares_change_and_the_other_team_may_then_edit(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    owner, other = api("operator"), api("operator2")
    refused(other.patch(url(audience), {"purpose": "x"}, format="json"), 403, "permission_denied")
    denied_event(other.user, "audience.edit")

    response = owner.post(url(audience, "share"), {"team": "retention", "level": "change"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"audience": audience.pk, "shares": [{"team": "retention", "level": "change"}]}
    assert other.patch(url(audience), {"purpose": "x"}, format="json").status_code == 200
    event = AuditEvent.objects.get(action="audience.share")
    assert event.changes == {"grantee": {"team": "retention"}, "before": {"level": None}, "after": {"level": "change"}}


def test_sharing_again_replaces_the_level(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    owner, other = api("operator"), api("operator2")
    owner.post(url(audience, "share"), {"team": "retention", "level": "change"}, format="json")

    response = owner.post(url(audience, "share"), {"team": "retention", "level": "view"}, format="json")

    assert response.json()["shares"] == [{"team": "retention", "level": "view"}]
    refused(other.patch(url(audience), {"purpose": "x"}, format="json"), 403, "permission_denied")
    denied_event(other.user, "audience.edit")


def test_a_person_can_be_shared_with(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    other = api("operator2")

    api("operator").post(url(audience, "share"), {"user": "p-operator2", "level": "change"}, format="json")

    assert other.patch(url(audience), {"purpose": "x"}, format="json").status_code == 200
    assert api("analyst").get(url(audience)).json()["shares"] == [{"user": "p-operator2", "level": "change"}]


def test_a_share_of_change_does_not_allow_sharing_further(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    other = api("operator2")
    api("operator").post(url(audience, "share"), {"team": "retention", "level": "change"}, format="json")
    team("other")

    response = other.post(url(audience, "share"), {"team": "other", "level": "change"}, format="json")

    assert code_of(response) == (403, "permission_denied")
    assert "only that team or an admin may share it" in response.json()["detail"]
    assert AuditEvent.objects.filter(action="audience.share", outcome="denied").count() == 1


@pytest.mark.parametrize(("who", "status"), [("admin", 200), ("analyst", 403), ("operator2", 403), ("developer", 200)])
def test_who_may_share(api, sandbox, who, status):
    audience = AudienceFactory(environment=sandbox)
    team("retention")

    response = api(who).post(url(audience, "share"), {"team": "retention", "level": "view"}, format="json")

    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"team": "retention", "user": "p-operator2", "level": "view"}, 422, "invalid_input"),
        ({"level": "view"}, 422, "invalid_input"),
        ({"team": "growth", "level": "view"}, 422, "invalid_input"),
        ({"team": "nope", "level": "view"}, 422, "invalid_input"),
        ({"user": "nobody-here", "level": "view"}, 422, "invalid_input"),
        ({"team": "retention", "level": "own"}, 422, "invalid_input"),
        ({"team": "retention", "level": "view", "until": "2030"}, 400, "unknown_fields"),
    ],
)
def test_bad_shares(api, sandbox, body, status, code):
    audience = AudienceFactory(environment=sandbox)
    team("retention")
    UserFactory(username="p-operator2")

    assert code_of(api("operator").post(url(audience, "share"), body, format="json")) == (status, code)


def test_unsharing_by_query_or_body_and_a_missing_share_is_404(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    owner = api("operator")
    UserFactory(username="p-operator2", groups=["campaign_operator", "retention"])
    owner.post(url(audience, "share"), {"team": "retention", "level": "change"}, format="json")
    owner.post(url(audience, "share"), {"user": "p-operator2", "level": "view"}, format="json")

    by_query = owner.delete(url(audience, "share") + "?team=retention")
    by_body = owner.delete(url(audience, "share"), {"user": "p-operator2"}, format="json")
    again = owner.delete(url(audience, "share") + "?team=retention")

    assert by_query.json()["shares"] == [{"user": "p-operator2", "level": "view"}]
    assert by_body.json()["shares"] == []
    assert code_of(again) == (404, "share_not_found")
    assert AuditEvent.objects.filter(action="audience.unshare").count() == 2


# --- archive under the approval policy -------------------------------------------------------


def test_archiving_a_published_audience_in_pilot_needs_two_approvals(api, pilot, persona):
    audience = AudienceFactory(environment=pilot)
    AudienceVersionFactory(audience=audience, live=True)
    client = api("operator", pilot)

    response = client.delete(url(audience))

    assert response.status_code == 202, response.content
    approval = response.json()["approval"]
    assert approval["required"] == 2 and approval["state"] == "pending"
    audience.refresh_from_db()
    assert audience.state == "published"
    filed = AuditEvent.objects.get(action="audience.archive")
    assert filed.outcome == "approval_requested"
    assert code_of(client.delete(url(audience))) == (409, "approval_pending")

    request = ApprovalRequest.objects.get(pk=approval["id"])
    for name in ("approver", "admin"):
        approval_approve(actor=Actor(user=persona(name), environment=pilot, door=Door.API), request=request)
    approval_execute(request.pk)

    audience.refresh_from_db()
    assert audience.state == "archived"
    request.refresh_from_db()
    assert request.state == "executed", request.result
    done = AuditEvent.objects.filter(action="audience.archive", outcome="allowed").get()
    assert done.actor_label == "p-operator" and done.door == "task"
    assert {ref["voter"] for ref in done.approval_refs} == {"p-approver", "p-admin"}
    assert OutboxEvent.objects.get(type="audience.archived").data["approval_request"] == request.pk


def test_a_draft_is_deleted_in_pilot_without_approval(api, pilot):
    audience = AudienceFactory(environment=pilot)

    assert api("operator", pilot).delete(url(audience)).status_code == 204


# --- promote -----------------------------------------------------------------------------------


def test_promote_copies_the_definition_as_a_draft_not_the_members(api, sandbox, production):
    audience = AudienceFactory(
        environment=sandbox, name="Lapsed EU", description="Lapsed, EU.", purpose="winback", channel="sms"
    )
    AudienceVersionFactory(audience=audience, live=True, memberships=[ProfileFactory(environment=sandbox)])

    response = api("operator").post(url(audience, "promote"), {"environment": "production"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    copy = Audience.objects.get(pk=body["audience"]["id"])
    assert copy.environment == production
    assert (copy.name, copy.state, copy.channel, copy.purpose, copy.description) == (
        "Lapsed EU",
        "draft",
        "sms",
        "winback",
        "Lapsed, EU.",
    )
    assert copy.rules == audience.rules and copy.owner_team.name == "growth" and copy.live_version is None
    assert not Membership.objects.filter(version__audience=copy).exists()
    assert body["unmapped"] == [] and body["warnings"] == []
    event = AuditEvent.objects.get(action="audience.promote")
    assert event.environment == production and event.target_id == str(copy.pk)
    assert event.changes["from"] == {"environment": "sandbox", "audience_id": audience.pk, "name": "Lapsed EU"}


def test_promote_maps_in_audience_by_name_and_reports_the_rest(api, sandbox, production):
    vip_here = AudienceFactory(environment=sandbox, name="VIP")
    AudienceVersionFactory(audience=vip_here, live=True)
    complainers = AudienceFactory(environment=sandbox, name="Complainers")
    AudienceVersionFactory(audience=complainers, live=True)
    drafts_here = AudienceFactory(environment=sandbox, name="Drafts")
    AudienceVersionFactory(audience=drafts_here, live=True)
    vip_there = AudienceFactory(environment=production, name="VIP")
    AudienceVersionFactory(audience=vip_there, live=True)
    drafts_there = AudienceFactory(environment=production, name="Drafts")  # exists, not published
    rules = {
        "all": [
            {"in_audience": vip_here.pk},
            {"not": {"in_audience": complainers.pk}},
            {"any": [{"in_audience": drafts_here.pk}, {"attr": "region", "op": "eq", "value": "EU"}]},
        ]
    }
    audience = AudienceFactory(environment=sandbox, name="VIP not complaining", rules=rules)

    body = api("operator").post(url(audience, "promote"), {"environment": "production"}, format="json").json()

    copy = Audience.objects.get(pk=body["audience"]["id"])
    assert copy.rules["all"][0] == {"in_audience": vip_there.pk}
    assert copy.rules["all"][1] == {"not": {"in_audience": complainers.pk}}, "unmapped stays as it was"
    assert copy.rules["all"][2]["any"][0] == {"in_audience": drafts_there.pk}
    assert body["unmapped"] == [
        {
            "pointer": "/rules/all/1/not/in_audience",
            "audience_id": complainers.pk,
            "name": "Complainers",
            "hint": "Promote 'Complainers' to production first (or create an audience of that name there), then "
            "edit this condition of the copy.",
        }
    ]
    assert [(w["pointer"], w["code"]) for w in body["warnings"]] == [
        ("/rules/all/2/any/0/in_audience", "audience_not_published")
    ]
    assert AuditEvent.objects.get(action="audience.promote").changes["unmapped"] == body["unmapped"]


def test_a_name_clash_in_the_target_is_409_with_a_hint_and_a_new_name_works(api, sandbox, production):
    audience = AudienceFactory(environment=sandbox, name="Lapsed EU")
    AudienceFactory(environment=production, name="Lapsed EU")
    client = api("operator")

    clash = client.post(url(audience, "promote"), {"environment": "production"}, format="json")
    renamed = client.post(
        url(audience, "promote"), {"environment": "production", "name": "Lapsed EU v2"}, format="json"
    )

    assert code_of(clash) == (409, "audience_name_taken")
    assert '"name": "Lapsed EU (copy)"' in clash.json()["hint"]
    assert renamed.status_code == 201
    assert renamed.json()["audience"]["name"] == "Lapsed EU v2"


def test_developers_cannot_promote_into_production_and_the_refusal_is_audited_there(api, sandbox, production):
    audience = AudienceFactory(environment=sandbox)

    response = api("developer").post(url(audience, "promote"), {"environment": "production"}, format="json")

    assert code_of(response) == (403, "permission_denied")
    assert response.json()["rule"] == "role_environment"
    denied = AuditEvent.objects.get(action="audience.create", outcome="denied")
    assert denied.environment == production
    assert not Audience.objects.filter(environment=production).exists()


def test_an_analyst_cannot_promote(api, sandbox):
    audience = AudienceFactory(environment=sandbox)

    assert code_of(api("analyst").post(url(audience, "promote"), {"environment": "production"}, format="json")) == (
        403,
        "permission_denied",
    )


def test_another_team_promotes_into_its_own_team(api, sandbox, production):
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    client = api("operator2")

    refused = client.post(url(audience, "promote"), {"environment": "production"}, format="json")
    mine = client.post(
        url(audience, "promote"), {"environment": "production", "owner_team": "retention"}, format="json"
    )

    assert code_of(refused) == (403, "not_team_member")
    assert mine.status_code == 201 and mine.json()["audience"]["owner_team"] == "retention"


@pytest.mark.parametrize("source", ["production", "pilot"])
def test_promote_down_into_a_weaker_environment_is_refused_with_why_and_audited(api, persona, source):
    from governance.models import Environment

    environment = Environment.objects.get(slug=source)
    audience = AudienceFactory(environment=environment)

    response = api("operator", environment).post(url(audience, "promote"), {"environment": "sandbox"}, format="json")

    problem = refused(response, 403, "permission_denied")
    assert problem["rule"] == "promote_down"
    assert "weaker controls" in problem["detail"] and "admin" in problem["hint"]
    denied_event(persona("operator"), "audience.promote", environment=environment)
    assert not Audience.objects.filter(environment__slug="sandbox").exists()


def test_production_into_pilot_is_down_too(api, production):
    audience = AudienceFactory(environment=production)
    response = api("operator", production).post(url(audience, "promote"), {"environment": "pilot"}, format="json")
    assert refused(response, 403, "permission_denied")["rule"] == "promote_down"


def test_an_admin_may_promote_down_and_the_audit_event_says_so(api, production, sandbox):
    audience = AudienceFactory(environment=production, owner_team__name="growth")

    response = api("admin", production).post(url(audience, "promote"), {"environment": "sandbox"}, format="json")

    assert response.status_code == 201, response.content
    event = AuditEvent.objects.get(action="audience.promote", outcome="allowed")
    assert event.environment == sandbox and event.changes["downward"] is True
    assert event.changes["from"]["environment"] == "production"


def test_promote_up_is_not_downward(api, sandbox):
    audience = AudienceFactory(environment=sandbox)
    assert api("operator").post(url(audience, "promote"), {"environment": "pilot"}, format="json").status_code == 201
    assert AuditEvent.objects.get(action="audience.promote").changes["downward"] is False


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"environment": "prod"}, 422, "unknown_environment"),
        ({"environment": "sandbox"}, 422, "invalid_input"),
        ({}, 422, "invalid_input"),
        ({"environment": "production", "members": True}, 400, "unknown_fields"),
    ],
)
def test_bad_promotions(api, sandbox, body, status, code):
    audience = AudienceFactory(environment=sandbox)

    assert code_of(api("operator").post(url(audience, "promote"), body, format="json")) == (status, code)


def test_a_promotion_resent_with_its_idempotency_key_is_replayed(api, sandbox, production):
    audience = AudienceFactory(environment=sandbox)
    client = api("operator")
    headers = {"HTTP_IDEMPOTENCY_KEY": "promote-1"}

    first = client.post(url(audience, "promote"), {"environment": "production"}, format="json", **headers)
    again = client.post(url(audience, "promote"), {"environment": "production"}, format="json", **headers)

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert Audience.objects.filter(environment=production).count() == 1
