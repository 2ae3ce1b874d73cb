"""People go through governance/configuration/services.py through every door: the admin's
change form and password page, and `seed_demo`. Each change is decided by the policy and
audited; a refusal names its code and leaves a denied row."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from governance.actors import Actor
from governance.configuration import services as config_services
from governance.models import AuditEvent, Door, Outcome
from governance.policy import PolicyDenied
from sandbox.management.commands.seed_demo import DEMO_USERS, TEAMS
from tests.factories import UserFactory


@pytest.fixture
def platform_admin(db):
    return UserFactory(username="platform-admin", is_staff=True, groups=["admin"])


@pytest.fixture
def site(client, platform_admin):
    client.force_login(platform_admin)
    return client


def _events(action: str, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


def _person_form(user, **changes):
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "roles": ["analyst"],
        "teams": [],
        "is_active": "on",
        "_save": "Save",
    }
    data.update(changes)
    return data


# --- the admin -------------------------------------------------------------------------------------


def test_names_and_email_changed_in_the_admin_are_audited(site, platform_admin, sandbox):
    person = UserFactory(username="bea", first_name="Bea", email="bea@example.test", groups=["analyst"])

    response = site.post(
        f"/admin/auth/user/{person.pk}/change/", _person_form(person, first_name="Beatrice", email="bea@corp.test")
    )

    assert response.status_code == 302, response.content[:3000]
    person.refresh_from_db()
    assert (person.first_name, person.email) == ("Beatrice", "bea@corp.test")
    (event,) = _events("user.change")
    assert (event.door, event.actor_user, event.environment, event.outcome) == (
        Door.ADMIN,
        platform_admin,
        sandbox,
        Outcome.ALLOWED,
    )
    assert event.changes == {
        "before": {"first_name": "Bea", "email": "bea@example.test"},
        "after": {"first_name": "Beatrice", "email": "bea@corp.test"},
    }
    # roles and access did not change: no access event
    assert not _events("user.access_change")


def test_saving_a_person_unchanged_writes_nothing(site):
    person = UserFactory(username="bea", first_name="Bea", groups=["analyst"])
    before = AuditEvent.objects.count()

    response = site.post(f"/admin/auth/user/{person.pk}/change/", _person_form(person))

    assert response.status_code == 302
    assert AuditEvent.objects.count() == before


def test_a_name_and_a_role_changed_in_one_save_are_two_events(site):
    person = UserFactory(username="bea", groups=["analyst"])

    site.post(
        f"/admin/auth/user/{person.pk}/change/", _person_form(person, last_name="Ng", roles=["campaign_operator"])
    )

    assert [e.changes["after"] for e in _events("user.change")] == [{"last_name": "Ng"}]
    assert [e.changes["after"] for e in _events("user.access_change")] == [{"roles": ["campaign_operator"]}]


def test_a_password_set_in_the_admin_is_audited_without_the_password(site, platform_admin):
    person = UserFactory(username="bea", groups=["analyst"])
    url = f"/admin/auth/user/{person.pk}/password/"

    response = site.post(
        url, {"usable_password": "true", "password1": "Tr1cky-new-pass", "password2": "Tr1cky-new-pass"}
    )

    assert response.status_code == 302, response.content[:3000]
    person.refresh_from_db()
    assert person.check_password("Tr1cky-new-pass")
    (event,) = _events("user.change")
    assert (event.door, event.actor_user) == (Door.ADMIN, platform_admin)
    assert event.changes == {"after": {"password": "set"}}
    assert "Tr1cky" not in str(event.changes) and person.password not in str(event.changes)


def test_changing_a_person_needs_a_role_that_may(persona, sandbox):
    person = UserFactory(username="bea", groups=["analyst"])
    developer = Actor(user=persona("developer"), environment=sandbox, door=Door.ADMIN)
    person.email = "elsewhere@example.test"

    with pytest.raises(PolicyDenied) as refused:
        config_services.user_change(actor=developer, user=person)

    assert refused.value.code == "permission_denied"
    assert User.objects.get(pk=person.pk).email == "bea@example.test"
    (denied,) = _events("user.change")
    assert (denied.outcome, denied.actor_user, denied.door) == (Outcome.DENIED, developer.user, Door.ADMIN)
    with pytest.raises(PolicyDenied) as refused:
        config_services.user_password_set(actor=developer, user=person, password="x-Tr1cky-pass")
    assert refused.value.code == "permission_denied"
    assert [e.outcome for e in _events("user.change")] == [Outcome.DENIED, Outcome.DENIED]


# --- seed_demo -------------------------------------------------------------------------------------


@pytest.fixture
def demo(settings, db):
    settings.DEBUG = True
    settings.MARKETERAPI_DEMO = False


def _seed() -> None:
    call_command("seed_demo", stdout=StringIO())


def test_seed_demo_creates_users_and_teams_through_the_services(demo, sandbox):
    _seed()

    created = _events("user.create")
    assert sorted(e.target_label for e in created) == sorted(DEMO_USERS)
    assert {(e.door, e.actor_user, e.actor_label, e.environment) for e in created} == {
        (Door.CLI, None, "system (cli)", sandbox)
    }
    access = {e.target_label: e.changes["after"] for e in _events("user.access_change", door=Door.CLI)}
    assert access["demo-operator"]["roles"] == ["campaign_operator"]
    assert access["demo-operator"]["teams"] == ["growth"]
    assert access["demo-admin"]["is_staff"] is True
    assert sorted(e.target_label for e in _events("team.create", door=Door.CLI)) == sorted(TEAMS)


def test_seed_demo_again_audits_only_what_it_puts_back(demo):
    _seed()
    operator = User.objects.get(username="demo-operator")
    operator.set_password("changed")
    operator.is_staff = True
    operator.save()
    start = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()

    _seed()

    again = AuditEvent.objects.filter(id__gt=start).order_by("id")
    assert [(e.action, e.target_label) for e in again] == [
        ("user.change", "demo-operator"),
        ("user.access_change", "demo-operator"),
    ]
    assert again[1].changes == {"before": {"is_staff": True}, "after": {"is_staff": False}}
