"""Admin pages for profiles, consent, profile events, the outbox, environments, tokens
and the audit trail."""

from __future__ import annotations

import pytest
from django.urls import reverse

from governance.models import ApiToken, AuditEvent, Door, OutboxEvent, Outcome
from tests.conftest import issue_test_token
from tests.factories import ConsentFactory, ProfileEventFactory, ProfileFactory, UserFactory


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True, groups=["admin"])


@pytest.fixture
def staff(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def data(sandbox):
    profile = ProfileFactory(external_id="ann", email="jane@example.test")
    ConsentFactory(profile=profile)
    ProfileEventFactory(profile=profile)
    OutboxEvent.objects.create(environment=sandbox, type="consent.updated", aggregate_type="x", aggregate_id="1")
    return profile


@pytest.mark.parametrize(
    "model",
    [
        "audiences/profile",
        "audiences/consent",
        "audiences/consentchange",
        "audiences/profileevent",
        "governance/outboxevent",
        "governance/environment",
        "governance/apitoken",
        "governance/auditevent",
    ],
)
def test_changelists_load(staff, data, model):
    response = staff.get(f"/admin/{model}/")

    assert response.status_code == 200


def test_profile_admin_shows_pii_and_audits_the_read(staff, data, superuser):
    listed = staff.get("/admin/audiences/profile/?q=ann")
    detail = staff.get(reverse("admin:audiences_profile_change", args=[data.pk]))

    assert b"jane@example.test" in listed.content
    assert b"jane@example.test" in detail.content
    reads = list(AuditEvent.objects.filter(action="profile.pii_read").order_by("id"))
    assert [(r.door, r.changes["profile_ids"], r.actor_user) for r in reads] == [
        (Door.ADMIN, [data.pk], superuser),
        (Door.ADMIN, [data.pk], superuser),
    ]


def test_ingested_data_cannot_be_edited_in_the_admin(staff, data):
    assert staff.get(reverse("admin:audiences_profile_add")).status_code == 403
    assert staff.post(reverse("admin:audiences_profile_delete", args=[data.pk])).status_code == 403
    assert staff.get(reverse("admin:audiences_consent_add")).status_code == 403
    assert staff.get(reverse("admin:governance_outboxevent_add")).status_code == 403


def test_audit_events_are_read_only(staff, data, sandbox, superuser):
    event = AuditEvent.objects.create(environment=sandbox, door=Door.API, action="x.y", outcome=Outcome.ALLOWED)

    assert staff.get(reverse("admin:governance_auditevent_add")).status_code == 403
    assert staff.post(reverse("admin:governance_auditevent_delete", args=[event.pk])).status_code == 403
    page = staff.get(reverse("admin:governance_auditevent_change", args=[event.pk]))
    assert page.status_code == 200 and b"Save" not in page.content
    assert staff.get("/admin/governance/auditevent/?outcome=allowed&door=api&action=x.y").status_code == 200


def test_token_admin_never_shows_the_hash_and_revokes(staff, sandbox, superuser, persona):
    issue_test_token(persona("developer"), sandbox)
    token = ApiToken.objects.get()

    changelist = staff.get("/admin/governance/apitoken/")
    detail = staff.get(reverse("admin:governance_apitoken_change", args=[token.pk]))
    response = staff.post(
        "/admin/governance/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )

    for page in (changelist, detail):
        assert token.key_hash.encode() not in page.content
    assert b"Revoked 1 token" in response.content
    token.refresh_from_db()
    assert token.revoked_at is not None
    audit = AuditEvent.objects.get(action="token.revoke")
    assert (audit.door, audit.actor_user, audit.environment) == (Door.ADMIN, superuser, sandbox)


def test_environment_admin_keeps_history(staff, sandbox):
    response = staff.get(reverse("admin:governance_environment_history", args=[sandbox.pk]))

    assert response.status_code == 200


def test_staff_without_the_admin_role_see_masked_pii_and_nothing_is_audited(client, data):
    from tests.factories import UserFactory

    developer = UserFactory(username="dev-staff", groups=["developer"], is_staff=True)
    client.force_login(developer)
    listed = client.get("/admin/audiences/profile/")
    detail = client.get(reverse("admin:audiences_profile_change", args=[data.pk]))

    assert listed.status_code == detail.status_code == 200
    assert b"jane@example.test" not in listed.content and b"jane@example.test" not in detail.content
    assert b"j***@e***.test" in listed.content
    assert not AuditEvent.objects.filter(action="profile.pii_read").exists()
