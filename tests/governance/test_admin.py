"""The admin site of platform engineers (docs/admin.md): every page opens for an admin,
others stay out, and every change goes through a service that audits it (door `admin`)."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from waffle.models import Flag, Sample, Switch

from audiences.models import (
    Audience,
    CatalogueEntry,
    ConsentChange,
    Export,
    RegionalRestriction,
    SuppressionEntry,
    SuppressionList,
)
from governance.models import (
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalVote,
    AuditEvent,
    Door,
    FlagMeta,
    OutboxEvent,
    QuotaPolicy,
    QuotaUsage,
    ServiceAccount,
)
from integrations.models import (
    DeadLetter,
    DeliveryAttempt,
    DestinationPush,
    WebhookDelivery,
)
from tests.conftest import issue_test_token
from tests.factories import (
    ApprovalRequestFactory,
    AudienceFactory,
    AudienceVersionFactory,
    ConsentFactory,
    DestinationFactory,
    JobFactory,
    ProfileEventFactory,
    ProfileFactory,
    UserFactory,
    WebhookSubscriptionFactory,
)


@pytest.fixture
def platform_admin(db):
    """Role admin and staff, not a superuser: what the admin site shows comes from the role."""
    return UserFactory(username="platform-admin", is_staff=True, groups=["admin"])


@pytest.fixture
def site(client, platform_admin):
    client.force_login(platform_admin)
    return client


def audit_events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@pytest.fixture
def everything(sandbox, pilot, platform_admin, tmp_path):
    """One object of every model the admin site shows, so each change form can open."""
    growth = Group.objects.get_or_create(name="growth")[0]
    operator = UserFactory(username="op", groups=["campaign_operator", "growth"])
    issue_test_token(operator, sandbox)
    profile = ProfileFactory(external_id="ann")
    ConsentFactory(profile=profile)
    ConsentChange.objects.create(
        profile=profile, channel="email", status="granted", source="test", captured_at=timezone.now()
    )
    ProfileEventFactory(profile=profile)
    lapsed = AudienceFactory(environment=sandbox, name="Lapsed", owner_team=growth)
    AudienceVersionFactory(audience=lapsed)
    suppression = SuppressionList.objects.create(environment=sandbox, name="complaints")
    SuppressionEntry.objects.create(suppression_list=suppression, external_id="ann")
    RegionalRestriction.objects.create(environment=sandbox, region="EU", kind="blocked", description="No EU")
    now = timezone.now()
    CatalogueEntry.objects.create(
        environment=sandbox, kind="attribute", key="plan", first_seen_at=now, last_seen_at=now
    )
    event = OutboxEvent.objects.create(
        environment=sandbox, type="consent.updated", aggregate_type="x", aggregate_id="1"
    )
    hook = WebhookSubscriptionFactory(environment=sandbox, url="http://127.0.0.1:9/hook")
    delivery = WebhookDelivery.objects.create(subscription=hook, event=event)
    DeliveryAttempt.objects.create(delivery=delivery, attempt=1, status_code=500)
    DeadLetter.objects.create(environment=sandbox, kind="outbox_dispatch", reference_id=str(event.pk))
    destination = DestinationFactory(
        environment=sandbox, name="drop", config={"directory": str(tmp_path), "format": "jsonl"}
    )
    job = JobFactory(environment=sandbox)
    DestinationPush.objects.create(destination=destination, job=job, kind="members", payload={})
    Export.objects.create(
        environment=sandbox, audience=lapsed, format="csv", fields=["external_id"], created_by=operator
    )
    from campaigns.models import ReviewItem
    from tests.factories import CampaignFactory

    campaign = CampaignFactory(environment=sandbox, audience=lapsed, owner_team=growth, destination=destination)
    ReviewItem.objects.create(
        environment=sandbox, campaign=campaign, destination=destination, recipients=3, why="503 from the vendor"
    )
    request = ApprovalRequestFactory(environment=pilot, requester=operator, target_id="1", target_label="Lapsed")
    ApprovalVote.objects.create(request=request, voter=platform_admin, decision="approve", role="admin")
    QuotaUsage.objects.create(quota="publish", subject=f"user:{operator.pk}", period_start=timezone.now(), used=3)
    flag = Flag.objects.create(name="next_best_offer", everyone=True)
    FlagMeta.objects.create(flag=flag, description="Recommends offers", owner="growth", affects_personalization=True)
    Switch.objects.create(name="maintenance", active=False)
    Sample.objects.create(name="sampled", percent=10)
    from governance.access import services
    from governance.actors import Actor

    services.service_account_create(
        actor=Actor(user=platform_admin, environment=sandbox, door=Door.ADMIN), username="crm-sync", roles=["developer"]
    )
    return {"flag": flag, "operator": operator, "audience": Audience.objects.get(name="Lapsed")}


# --- who may enter -----------------------------------------------------------------------------


def test_every_page_opens_for_an_admin(site, everything):
    failures = []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = site.get(changelist)
        if response.status_code != 200:
            failures.append(f"{changelist}: {response.status_code}")
            continue
        obj = model_admin.get_queryset(response.wsgi_request).order_by("pk").first()
        if obj is None:
            failures.append(f"{changelist}: no object to open (add one to the `everything` fixture)")
            continue
        change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        response = site.get(change)
        if response.status_code != 200:
            failures.append(f"{change}: {response.status_code}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("is_staff", "groups"),
    [(False, ["admin"]), (True, ["analyst"]), (True, ["approver"]), (True, [])],
    ids=["admin-not-staff", "staff-analyst", "staff-approver", "staff-no-role"],
)
def test_others_are_sent_to_the_login_page(client, db, is_staff, groups):
    client.force_login(UserFactory(username="someone", is_staff=is_staff, groups=groups))

    response = client.get("/admin/governance/approvalpolicy/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_developer_sees_integration_pages_not_policies(client, db, everything):
    client.force_login(UserFactory(username="dev", is_staff=True, groups=["developer", "growth"]))

    assert client.get("/admin/governance/apitoken/").status_code == 200
    assert client.get("/admin/governance/serviceaccount/").status_code == 200
    assert client.get("/admin/integrations/destination/").status_code == 200
    assert client.get("/admin/governance/approvalpolicy/").status_code == 403
    assert client.get("/admin/auth/user/").status_code == 403


# --- tokens and service accounts -----------------------------------------------------------------


def test_the_revoke_action_revokes_through_the_service_and_audits(site, sandbox, platform_admin):
    owner = UserFactory(username="integrator", groups=["developer"])
    issue_test_token(owner, sandbox)
    token = owner.api_tokens.get()

    response = site.post(
        "/admin/governance/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )

    token.refresh_from_db()
    assert response.status_code == 200
    assert token.revoked_at is not None
    assert b"Revoked 1 token(s)." in response.content
    (event,) = audit_events("token.revoke")
    assert (event.door, event.actor_user, event.environment) == (Door.ADMIN, platform_admin, sandbox)
    assert event.target_id == str(token.pk)


def test_the_token_pages_never_show_the_hash_and_filter_by_state(site, sandbox):
    owner = UserFactory(username="integrator", groups=["developer"])
    issue_test_token(owner, sandbox)
    token = owner.api_tokens.get()

    listing = site.get("/admin/governance/apitoken/?state=active&service_account=no")
    detail = site.get(f"/admin/governance/apitoken/{token.pk}/change/")
    revoked = site.get("/admin/governance/apitoken/?state=revoked")

    assert token.prefix.encode() in listing.content
    assert token.prefix.encode() not in revoked.content
    for page in (listing, detail):
        assert token.key_hash.encode() not in page.content


def test_an_admin_creates_a_service_account_through_the_service(site, sandbox, platform_admin):
    owner = UserFactory(username="ann", groups=["developer"])

    response = site.post(
        "/admin/governance/serviceaccount/add/",
        {"username": "crm-sync", "roles": ["developer"], "owner": owner.pk, "description": "CRM sync", "_save": "Save"},
    )

    assert response.status_code == 302, response.content[:2000]
    account = ServiceAccount.objects.get(user__username="crm-sync")
    assert account.owner == owner
    assert account.description == "CRM sync"
    assert list(account.user.groups.values_list("name", flat=True)) == ["developer"]
    assert not account.user.has_usable_password()
    (event,) = audit_events("service_account.create")
    assert (event.door, event.actor_user) == (Door.ADMIN, platform_admin)
    assert event.changes["after"]["owner"] == "ann"


def test_a_service_account_without_an_owner_is_owned_by_its_creator(site, platform_admin):
    site.post("/admin/governance/serviceaccount/add/", {"username": "etl", "roles": ["analyst"], "_save": "Save"})

    assert ServiceAccount.objects.get(user__username="etl").owner == platform_admin


def test_a_developer_may_not_give_a_service_account_more_than_their_roles(client, db):
    client.force_login(UserFactory(username="dev", is_staff=True, groups=["developer"]))

    response = client.post(
        "/admin/governance/serviceaccount/add/", {"username": "etl", "roles": ["admin"], "_save": "Save"}
    )

    assert response.status_code == 200
    assert b"only roles you hold; not admin" in response.content
    assert not ServiceAccount.objects.exists()


# --- environments and change windows ----------------------------------------------------------------


def _environment_form(production, **changes):
    data = {
        "name": production.name,
        "purpose": production.purpose,
        "time_zone": "America/New_York",
        "change_windows": json.dumps([{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}]),
        "_save": "Save",
    }
    data.update(changes)
    return data


def test_change_windows_are_saved_through_the_service_and_audited(site, production, platform_admin):
    response = site.post(f"/admin/governance/environment/{production.pk}/change/", _environment_form(production))

    assert response.status_code == 302, response.content[:3000]
    production.refresh_from_db()
    assert production.change_windows == [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}]
    assert production.time_zone == "America/New_York"
    (event,) = audit_events("environment.change")
    assert (event.door, event.environment, event.actor_user) == (Door.ADMIN, production, platform_admin)
    assert event.changes["before"]["time_zone"] == "Europe/London"
    assert event.changes["after"]["time_zone"] == "America/New_York"
    assert production.history.first().history_user == platform_admin


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        ([{"days": [7], "start": "09:00", "end": "17:00"}], "weekdays 0–6"),
        ([{"days": [0], "start": "17:00", "end": "09:00"}], "must end after it starts"),
        ([{"days": [0], "start": "9am", "end": "17:00"}], "HH:MM"),
        ({"days": [0]}, "must be a list of windows"),
    ],
)
def test_bad_change_windows_are_refused_with_the_reason(site, production, windows, message):
    response = site.post(
        f"/admin/governance/environment/{production.pk}/change/",
        _environment_form(production, change_windows=json.dumps(windows)),
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    production.refresh_from_db()
    assert production.change_windows == [{"days": [0, 1, 2, 3], "start": "09:00", "end": "17:00"}]
    assert not audit_events("environment.change")


def test_an_unknown_time_zone_is_refused(site, production):
    response = site.post(
        f"/admin/governance/environment/{production.pk}/change/", _environment_form(production, time_zone="Mars/Base")
    )

    assert response.status_code == 200
    assert "is not a time zone" in response.content.decode()


# --- approval policies -------------------------------------------------------------------------------


def _policy_form(policy, **changes):
    data = {
        "environment": policy.environment_id,
        "action": policy.action,
        "metric": policy.metric,
        "threshold": "" if policy.threshold is None else policy.threshold,
        "steps": json.dumps(policy.steps),
        "description": policy.description,
        "is_active": "on",
        "_save": "Save",
    }
    data.update(changes)
    return data


def test_an_approval_policy_is_edited_through_the_service_with_history(site, production, platform_admin):
    policy = ApprovalPolicy.objects.get(environment=production, action="audience.archive")

    response = site.post(
        f"/admin/governance/approvalpolicy/{policy.pk}/change/",
        _policy_form(policy, steps=json.dumps([["approver"], ["approver"], ["admin"]])),
    )

    assert response.status_code == 302, response.content[:3000]
    policy.refresh_from_db()
    assert policy.steps == [["approver"], ["approver"], ["admin"]]
    (event,) = audit_events("approval_policy.change")
    assert (event.door, event.environment) == (Door.ADMIN, production)
    assert event.changes == {
        "before": {"steps": [["approver"], ["developer", "admin"]]},
        "after": {"steps": [["approver"], ["approver"], ["admin"]]},
    }
    assert policy.history.first().history_user == platform_admin


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("[]", "Steps must be a list with one list of role names per approval"),
        ('[["approver"], []]', "Step 2 must be a non-empty list of role names"),
        ('["approver"]', "Step 1 must be a non-empty list of role names"),
        ('[["approver", "ceo"]]', "Step 1 names &#x27;ceo&#x27;, which is not a role"),
        ('{"approver": 1}', "one list of role names per approval"),
        ("[[approver]]", "Enter a valid JSON"),
    ],
)
def test_bad_approval_steps_are_refused_with_the_reason(site, production, steps, message):
    policy = ApprovalPolicy.objects.get(environment=production, action="audience.archive")

    response = site.post(f"/admin/governance/approvalpolicy/{policy.pk}/change/", _policy_form(policy, steps=steps))

    assert response.status_code == 200
    assert message in response.content.decode()
    policy.refresh_from_db()
    assert policy.steps == [["approver"], ["developer", "admin"]]
    assert not audit_events("approval_policy.change")


def test_a_policy_for_an_action_that_never_asks_is_refused(site, production):
    policy = ApprovalPolicy.objects.get(environment=production, action="audience.archive")

    response = site.post(
        f"/admin/governance/approvalpolicy/{policy.pk}/change/", _policy_form(policy, action="audience.create")
    )

    assert response.status_code == 200
    assert "never asks for approval" in response.content.decode()


def test_a_new_policy_for_a_new_environment(site, platform_admin):
    uat = site.post(
        "/admin/governance/environment/add/",
        {
            "slug": "uat",
            "name": "UAT",
            "purpose": "User acceptance",
            "data_kind": "constrained",
            "time_zone": "UTC",
            "change_windows": "[]",
            "_save": "Save",
        },
    )
    assert uat.status_code == 302, uat.content[:3000]
    from governance.models import Environment

    environment = Environment.objects.get(slug="uat")

    response = site.post(
        "/admin/governance/approvalpolicy/add/",
        {
            "environment": environment.pk,
            "action": "audience.publish",
            "metric": "reach",
            "threshold": "1000",
            "steps": '[["approver"]]',
            "description": "Publishing to more than 1,000 people",
            "is_active": "on",
            "_save": "Save",
        },
    )

    assert response.status_code == 302, response.content[:3000]
    assert ApprovalPolicy.objects.filter(environment=environment, action="audience.publish", threshold=1000).exists()
    created = audit_events("environment.create")[0]
    assert created.environment == environment
    (event,) = audit_events("approval_policy.create")
    assert event.environment == environment


def test_approval_requests_are_read_only_with_their_votes(site, everything):
    request = ApprovalRequest.objects.get()

    page = site.get(f"/admin/governance/approvalrequest/{request.pk}/change/")
    listing = site.get("/admin/governance/approvalrequest/?state=pending")

    assert page.status_code == listing.status_code == 200
    assert b"platform-admin" in page.content  # the vote
    assert b"1 of 2" in listing.content
    assert site.get("/admin/governance/approvalrequest/add/").status_code == 403


# --- quotas ------------------------------------------------------------------------------------------


def _quota_form(**changes):
    data = {
        "name": "export-masked",
        "action": "export.create",
        "description": "Masked exports for analysts",
        "period": "month",
        "limit": "80",
        "environment": "",
        "role": "analyst",
        "user": "",
        "token": "",
        "is_active": "on",
        "_save": "Save",
    }
    data.update(changes)
    return data


def test_a_quota_policy_is_added_through_the_service(site, platform_admin):
    response = site.post("/admin/governance/quotapolicy/add/", _quota_form())

    assert response.status_code == 302, response.content[:3000]
    policy = QuotaPolicy.objects.get(role="analyst")
    assert policy.limit == 80
    (event,) = audit_events("quota_policy.create")
    assert event.door == Door.ADMIN
    assert event.changes["after"]["role"] == "analyst"


def test_a_quota_policy_names_one_subject_at_most(site, platform_admin):
    response = site.post("/admin/governance/quotapolicy/add/", _quota_form(user=platform_admin.pk))

    assert response.status_code == 200
    assert "names role and user" in response.content.decode()
    assert not QuotaPolicy.objects.filter(role="analyst").exists()


def test_a_quota_policy_needs_an_action_name(site):
    response = site.post("/admin/governance/quotapolicy/add/", _quota_form(action="exports!"))

    assert response.status_code == 200
    assert "is not an action name" in response.content.decode()


# --- roles, teams and people ----------------------------------------------------------------------------


def test_roles_are_read_only_and_teams_are_listed_apart(site, db):
    Group.objects.get_or_create(name="growth")
    role = Group.objects.get(name="approver")

    roles = site.get("/admin/auth/group/?kind=role")
    teams = site.get("/admin/auth/group/?kind=team")
    page = site.get(f"/admin/auth/group/{role.pk}/change/")
    posted = site.post(f"/admin/auth/group/{role.pk}/change/", {"name": "approvers"})

    assert b"growth" in teams.content and b"growth" not in roles.content
    assert b"approver" in roles.content
    assert b"audiences.view_audience" in page.content
    assert posted.status_code == 403
    assert Group.objects.filter(name="approver").exists()


def test_a_team_is_created_through_the_service(site, platform_admin):
    response = site.post("/admin/auth/group/add/", {"name": "lifecycle", "_save": "Save"})

    assert response.status_code == 302, response.content[:3000]
    assert Group.objects.filter(name="lifecycle").exists()
    (event,) = audit_events("team.create")
    assert event.door == Door.ADMIN


def test_a_team_cannot_take_a_role_name(site):
    response = site.post("/admin/auth/group/add/", {"name": "admin ", "_save": "Save"})

    assert response.status_code == 200
    assert "is a role" in response.content.decode()


def _person_form(user, **changes):
    data = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": user.email,
        "roles": [],
        "teams": [],
        "is_active": "on",
        "_save": "Save",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_roles_and_teams_of_a_person_change_through_the_service(site, platform_admin):
    Group.objects.get_or_create(name="growth")
    person = UserFactory(username="bea", groups=["analyst"])

    response = site.post(
        f"/admin/auth/user/{person.pk}/change/",
        _person_form(person, roles=["campaign_operator"], teams=["growth"], is_staff="on"),
    )

    assert response.status_code == 302, response.content[:3000]
    assert sorted(person.groups.values_list("name", flat=True)) == ["campaign_operator", "growth"]
    person.refresh_from_db()
    assert person.is_staff
    (event,) = audit_events("user.access_change")
    assert event.door == Door.ADMIN
    assert event.changes["before"] == {"roles": ["analyst"], "teams": [], "is_staff": False}
    assert event.changes["after"] == {"roles": ["campaign_operator"], "teams": ["growth"], "is_staff": True}


def test_an_admin_does_not_make_a_superuser(site):
    person = UserFactory(username="bea", groups=["analyst"])

    site.post(f"/admin/auth/user/{person.pk}/change/", _person_form(person, roles=["analyst"], is_superuser="on"))

    person.refresh_from_db()
    assert not person.is_superuser


def test_an_admin_does_not_remove_their_own_admin_role(site, platform_admin):
    response = site.post(
        f"/admin/auth/user/{platform_admin.pk}/change/",
        _person_form(platform_admin, roles=["analyst"], is_staff="on"),
        follow=True,
    )

    assert "cannot take away your own admin role" in response.content.decode()
    assert platform_admin.groups.filter(name="admin").exists()
    denied = AuditEvent.objects.get(action="user.access_change")
    assert denied.outcome == "denied"


def test_people_filter_by_role_and_team(site, db):
    UserFactory(username="bea", groups=["analyst", "growth"])
    UserFactory(username="cid", groups=["approver"])

    by_role = site.get("/admin/auth/user/?role=analyst").content
    by_team = site.get("/admin/auth/user/?team=growth").content

    assert b"bea" in by_role and b"cid" not in by_role
    assert b"bea" in by_team and b"cid" not in by_team


# --- flags -----------------------------------------------------------------------------------------------


def _flag_form(flag, **changes):
    data = {
        "name": flag.name,
        "everyone": {True: "true", False: "false"}.get(flag.everyone, "unknown"),
        "percent": "",
        "superusers": "on",
        "staff": "",
        "authenticated": "",
        "languages": "",
        "groups": [],
        "users": "",
        "rollout": "",
        "note": flag.note,
        "meta-TOTAL_FORMS": "1",
        "meta-INITIAL_FORMS": "1" if FlagMeta.objects.filter(flag=flag).exists() else "0",
        "meta-MIN_NUM_FORMS": "0",
        "meta-MAX_NUM_FORMS": "1",
        "meta-0-flag": flag.pk,
        "_save": "Save",
    }
    meta = FlagMeta.objects.filter(flag=flag).first()
    if meta is not None:
        data.update(
            {
                "meta-0-id": meta.pk,
                "meta-0-description": meta.description,
                "meta-0-owner": meta.owner,
                "meta-0-affects_personalization": "on" if meta.affects_personalization else "",
            }
        )
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_a_flag_is_described_and_rolled_out_through_the_services(site, platform_admin, sandbox):
    flag = Flag.objects.create(name="smart_send", everyone=None)

    response = site.post(
        f"/admin/waffle/flag/{flag.pk}/change/",
        _flag_form(
            flag,
            everyone="true",
            **{"meta-0-description": "Send at the best hour", "meta-0-owner": "growth"},
        ),
    )

    assert response.status_code == 302, response.content[:4000]
    flag.refresh_from_db()
    assert flag.everyone is True
    assert flag.meta.description == "Send at the best hour"
    change = AuditEvent.objects.get(action="flag.change", door=Door.ADMIN)  # one event for the whole save
    assert change.environment == sandbox
    assert change.changes["after"]["everyone"] is True
    assert AuditEvent.objects.get(action="flag.meta_change").changes["after"]["owner"] == "growth"


def test_switching_off_a_personalization_flag_in_the_admin_asks_for_approvals(site, everything, production):
    flag = everything["flag"]
    acting = site.post(
        "/admin/governance/environment/", {"action": "act_here", "_selected_action": [production.pk]}, follow=True
    )
    assert "acting in production" in acting.content.decode()

    response = site.post(f"/admin/waffle/flag/{flag.pk}/change/", _flag_form(flag, everyone="false"), follow=True)

    flag.refresh_from_db()
    assert flag.everyone is True  # unchanged until approved
    request = ApprovalRequest.objects.get(action="flag.disable_personalization")
    assert request.environment == production
    assert f"request #{request.pk} was filed" in response.content.decode()


def test_switching_off_a_personalization_flag_from_the_sandbox_is_refused(site, everything, sandbox):
    flag = everything["flag"]

    response = site.post(f"/admin/waffle/flag/{flag.pk}/change/", _flag_form(flag, everyone="false"), follow=True)

    flag.refresh_from_db()
    assert flag.everyone is True
    assert "can only be switched off with approvals" in response.content.decode() or "Flags are global" in (
        response.content.decode()
    )
    denied = AuditEvent.objects.get(action="flag.disable_personalization")
    assert (denied.outcome, denied.environment) == ("denied", sandbox)


def test_the_switch_off_action_goes_through_the_flag_service(site, db, sandbox):
    flag = Flag.objects.create(name="beta_banner", everyone=True)

    site.post("/admin/waffle/flag/", {"action": "switch_off_for_everyone", "_selected_action": [flag.pk]})

    flag.refresh_from_db()
    assert flag.everyone is False
    event = audit_events("flag.change")[-1]
    assert event.door == Door.ADMIN
    assert (event.changes["before"]["everyone"], event.changes["after"]["everyone"]) == (True, False)


def test_a_flag_is_added_through_the_service(site, platform_admin, sandbox):
    group = Group.objects.create(name="pilot-testers")
    form = {
        "name": "smart_send",
        "everyone": "unknown",
        "percent": "",
        "groups": [group.pk],
        "note": "Send at the best hour",
        "meta-TOTAL_FORMS": "1",
        "meta-INITIAL_FORMS": "0",
        "meta-MIN_NUM_FORMS": "0",
        "meta-MAX_NUM_FORMS": "1",
        "meta-0-description": "Send at the best hour",
        "meta-0-owner": "growth",
        "_save": "Save",
    }

    response = site.post("/admin/waffle/flag/add/", {k: v for k, v in form.items() if v != ""})

    assert response.status_code == 302, response.content[:4000]
    flag = Flag.objects.get(name="smart_send")
    assert list(flag.groups.values_list("name", flat=True)) == ["pilot-testers"]
    (created,) = audit_events("flag.create")
    assert (created.door, created.actor_user, created.environment) == (Door.ADMIN, platform_admin, sandbox)
    assert created.changes["before"] is None and created.changes["after"]["groups"] == ["pilot-testers"]
    assert AuditEvent.objects.get(action="flag.meta_change").changes["after"]["owner"] == "growth"
    assert OutboxEvent.objects.filter(type="flag.changed", data__name="smart_send").exists()


def test_the_other_settings_of_a_flag_change_through_flag_set_in_one_event(site, sandbox):
    flag = Flag.objects.create(name="smart_send", everyone=None, note="old")

    response = site.post(f"/admin/waffle/flag/{flag.pk}/change/", _flag_form(flag, note="new", staff="on"))

    assert response.status_code == 302, response.content[:4000]
    flag.refresh_from_db()
    assert (flag.note, flag.staff) == ("new", True)
    (change,) = audit_events("flag.change")
    assert (change.changes["before"]["note"], change.changes["after"]["note"]) == ("old", "new")
    assert (change.changes["before"]["staff"], change.changes["after"]["staff"]) == (False, True)


def test_a_flag_is_not_renamed(site):
    flag = Flag.objects.create(name="smart_send", everyone=True)

    site.post(f"/admin/waffle/flag/{flag.pk}/change/", _flag_form(flag, name="other_name"))

    flag.refresh_from_db()
    assert flag.name == "smart_send"


def test_a_superuser_deletes_a_flag_on_its_page_through_the_service(client, sandbox):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    flag = Flag.objects.create(name="old_banner", everyone=True)

    response = client.post(f"/admin/waffle/flag/{flag.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Flag.objects.filter(pk=flag.pk).exists()
    (deleted,) = audit_events("flag.delete")
    assert (deleted.door, deleted.actor_user, deleted.outcome) == (Door.ADMIN, root, "allowed")


def test_a_switch_renamed_on_its_page_is_audited(site, platform_admin):
    switch = Switch.objects.create(name="maintenance", active=False)

    response = site.post(
        f"/admin/waffle/switch/{switch.pk}/change/", {"name": "maintenance-mode", "note": "", "_save": "Save"}
    )

    assert response.status_code == 302, response.content[:3000]
    switch.refresh_from_db()
    assert switch.name == "maintenance-mode"
    (event,) = audit_events("flag.change")
    assert (event.target_type, event.door, event.actor_user) == ("waffle.switch", Door.ADMIN, platform_admin)
    assert (event.changes["before"]["name"], event.changes["after"]["name"]) == ("maintenance", "maintenance-mode")


def test_a_personalization_flag_cannot_be_deleted(site, everything):
    flag = everything["flag"]

    site.post("/admin/waffle/flag/", {"action": "delete_flags", "_selected_action": [flag.pk]})

    assert Flag.objects.filter(pk=flag.pk).exists()


# --- sharing an audience -------------------------------------------------------------------------------------


def test_an_admin_shares_an_audience_with_a_team_through_the_service(site, everything, sandbox, platform_admin):
    audience = everything["audience"]
    retention = Group.objects.get_or_create(name="retention")[0]
    url = f"/admin/audiences/audience/{audience.pk}/permissions/group-manage/{retention.pk}/"

    page = site.get(f"/admin/audiences/audience/{audience.pk}/permissions/")
    shared = site.post(url, {"level": "change"})

    assert page.status_code == 200
    assert shared.status_code == 302
    from guardian.shortcuts import get_group_perms

    assert set(get_group_perms(retention, audience)) == {"view_audience", "change_audience"}
    (event,) = audit_events("audience.share")
    assert (event.door, event.environment, event.actor_user) == (Door.ADMIN, sandbox, platform_admin)

    site.post(url, {"level": "none"})

    assert not get_group_perms(retention, audience)
    assert audit_events("audience.unshare")


def test_sharing_with_a_role_is_refused_on_the_page(site, everything):
    audience = everything["audience"]
    role = Group.objects.get(name="analyst")

    response = site.post(
        f"/admin/audiences/audience/{audience.pk}/permissions/group-manage/{role.pk}/", {"level": "view"}
    )

    assert response.status_code == 200
    assert "There is no team" in response.content.decode()


def test_an_admin_shares_an_audience_with_a_person(site, everything):
    audience = everything["audience"]
    person = UserFactory(username="dee", groups=["campaign_operator"])

    site.post(f"/admin/audiences/audience/{audience.pk}/permissions/user-manage/{person.pk}/", {"level": "view"})

    assert person.has_perm("audiences.view_audience", audience)
    assert not person.has_perm("audiences.change_audience", audience)


def test_the_audit_trail_is_read_only(site, everything):
    event = AuditEvent.objects.first()

    assert site.get(f"/admin/governance/auditevent/{event.pk}/change/").status_code == 200
    assert site.get("/admin/governance/auditevent/add/").status_code == 403
    assert site.get(f"/admin/governance/auditevent/{event.pk}/delete/").status_code == 403


def test_history_pages_open(site, everything, production):
    policy = ApprovalPolicy.objects.filter(environment=production).first()
    pages = [
        f"/admin/governance/approvalpolicy/{policy.pk}/history/",
        f"/admin/governance/environment/{production.pk}/history/",
        f"/admin/governance/quotapolicy/{QuotaPolicy.objects.first().pk}/history/",
        f"/admin/auth/group/{Group.objects.get(name='admin').pk}/history/",
        f"/admin/waffle/flag/{everything['flag'].pk}/history/",
        f"/admin/governance/serviceaccount/{ServiceAccount.objects.first().pk}/history/",
    ]
    for page in pages:
        assert site.get(page).status_code == 200, page
