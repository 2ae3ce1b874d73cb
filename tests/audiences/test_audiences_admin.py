"""Admin pages for audiences, suppression lists and regional restrictions: every save and
action goes through the services, with the admin door in the audit trail."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from django.urls import reverse

from audiences.models import Audience, RegionalRestriction, SuppressionEntry, SuppressionList
from governance.models import ApprovalRequest, AuditEvent
from tests.factories import AudienceFactory, AudienceVersionFactory, UserFactory, team

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True, groups=["admin"])


@pytest.fixture
def staff(client, root):
    client.force_login(root)
    return client


def audience_form(environment, **overrides):
    data = {
        "environment": environment.pk,
        "name": "Admin made",
        "owner_team": team("growth").pk,
        "channel": "email",
        "purpose": "winback",
        "description": "Made in the admin.",
        "rules": json.dumps({"attr": "region", "op": "eq", "value": "EU"}),
        "_save": "Save",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    "path",
    [
        "audiences/audience",
        "audiences/suppressionlist",
        "audiences/suppressionentry",
        "audiences/regionalrestriction",
        "audiences/audience/add",
        "audiences/suppressionlist/add",
        "audiences/regionalrestriction/add",
    ],
)
def test_pages_load(staff, sandbox, path):
    AudienceFactory(environment=sandbox)
    assert staff.get(f"/admin/{path}/").status_code == 200


def test_an_audience_change_page_and_its_history_load(staff, sandbox):
    audience = AudienceFactory(environment=sandbox)

    assert staff.get(reverse("admin:audiences_audience_change", args=[audience.pk])).status_code == 200
    assert staff.get(reverse("admin:audiences_audience_history", args=[audience.pk])).status_code == 200


def test_adding_an_audience_goes_through_the_service(staff, sandbox):
    response = staff.post(reverse("admin:audiences_audience_add"), audience_form(sandbox))

    assert response.status_code == 302, response.content.decode()[:2000]
    audience = Audience.objects.get(name="Admin made")
    assert audience.created_by.username == "root"
    event = AuditEvent.objects.get(action="audience.create")
    assert (event.door, event.actor_label, event.target_id) == ("admin", "root", str(audience.pk))


def test_invalid_rules_are_shown_on_the_form_and_nothing_is_saved(staff, sandbox):
    rules = json.dumps({"attr": "regoin", "op": "eq", "value": "EU"})

    response = staff.post(reverse("admin:audiences_audience_add"), audience_form(sandbox, rules=rules))

    assert response.status_code == 200
    assert "did you mean &#x27;region&#x27;" in response.content.decode()
    assert not Audience.objects.exists()


def test_a_name_clash_is_shown_on_the_name_field(staff, sandbox):
    AudienceFactory(environment=sandbox, name="Admin made")

    response = staff.post(reverse("admin:audiences_audience_add"), audience_form(sandbox))

    assert response.status_code == 200
    assert "is taken in sandbox" in response.content.decode()
    assert Audience.objects.count() == 1


def test_changing_an_audience_is_audited_with_the_changed_fields(staff, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Admin made")

    response = staff.post(
        reverse("admin:audiences_audience_change", args=[audience.pk]),
        audience_form(sandbox, description="Changed in the admin.", rules=json.dumps(audience.rules)),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    audience.refresh_from_db()
    assert audience.description == "Changed in the admin."
    event = AuditEvent.objects.get(action="audience.edit")
    assert event.door == "admin" and event.changes["fields"] == ["description"]


def test_the_delete_action_deletes_drafts_and_files_approvals_for_published_audiences(staff, sandbox, production):
    draft = AudienceFactory(environment=sandbox, name="Draft")
    live = AudienceFactory(environment=production, name="Live")
    AudienceVersionFactory(audience=live, live=True)

    response = staff.post(
        reverse("admin:audiences_audience_changelist"),
        {"action": "delete_or_archive", "_selected_action": [draft.pk, live.pk]},
        follow=True,
    )

    text = response.content.decode()
    assert "Draft: deleted." in text
    assert "Live: approval request" in text
    assert not Audience.objects.filter(pk=draft.pk).exists()
    live.refresh_from_db()
    assert live.state == "published"
    assert ApprovalRequest.objects.get().action == "audience.archive"


def test_the_default_delete_is_not_offered(staff, sandbox):
    audience = AudienceFactory(environment=sandbox)

    assert staff.get(reverse("admin:audiences_audience_delete", args=[audience.pk])).status_code == 403


def test_a_suppression_list_is_created_with_entries_and_emails_are_hashed(staff, sandbox):
    response = staff.post(
        reverse("admin:audiences_suppressionlist_add"),
        {
            "environment": sandbox.pk,
            "name": "Complaints",
            "description": "People who complained",
            "add_entries": "cust-1\nAnn@Example.com\n",
            "remove_entries": "",
            "reason": "complaint",
            "entries-TOTAL_FORMS": "0",
            "entries-INITIAL_FORMS": "0",
            "_save": "Save",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    listed = set(SuppressionEntry.objects.values_list("external_id", "email_hash"))
    assert listed == {("cust-1", None), (None, hashlib.sha256(b"ann@example.com").hexdigest())}
    assert AuditEvent.objects.get(action="suppression.create").door == "admin"


def test_changing_the_global_list_in_production_files_an_approval(staff, production):
    glob = SuppressionList.objects.get(environment=production, is_global=True)

    response = staff.post(
        reverse("admin:audiences_suppressionlist_change", args=[glob.pk]),
        {
            "add_entries": "cust-9",
            "remove_entries": "",
            "reason": "",
            "entries-TOTAL_FORMS": "0",
            "entries-INITIAL_FORMS": "0",
            "_save": "Save",
        },
        follow=True,
    )

    assert "needs approval" in response.content.decode()
    assert not SuppressionEntry.objects.exists()
    assert ApprovalRequest.objects.get().action == "suppression.change_global"


def test_entries_are_found_by_email(staff, sandbox):
    glob = SuppressionList.objects.get(environment=sandbox, is_global=True)
    SuppressionEntry.objects.create(suppression_list=glob, email_hash=hashlib.sha256(b"zoe@example.test").hexdigest())
    SuppressionEntry.objects.create(suppression_list=glob, external_id="other")

    response = staff.get("/admin/audiences/suppressionentry/?q=Zoe@Example.test")

    assert response.context["cl"].result_count == 1


def test_regional_restrictions_are_saved_through_the_service(staff, sandbox):
    response = staff.post(
        reverse("admin:audiences_regionalrestriction_add"),
        {
            "environment": sandbox.pk,
            "region": "EU",
            "channel": "sms",
            "kind": "blocked",
            "description": "No SMS in the EU",
            "is_active": "on",
            "_save": "Save",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    restriction = RegionalRestriction.objects.get()
    event = AuditEvent.objects.get(action="regional_restriction.create")
    assert event.door == "admin" and event.changes["after"]["region"] == "EU" and event.target_id == str(restriction.pk)

    staff.post(
        reverse("admin:audiences_regionalrestriction_change", args=[restriction.pk]),
        {
            "environment": sandbox.pk,
            "region": "EU",
            "channel": "sms",
            "kind": "blocked",
            "description": "No SMS in the EU",
            "_save": "Save",
        },
    )
    restriction.refresh_from_db()
    assert restriction.is_active is False
    changed = AuditEvent.objects.get(action="regional_restriction.change")
    assert changed.changes["before"]["is_active"] is True and changed.changes["after"]["is_active"] is False


def test_the_admin_names_every_model_in_proper_english_plurals(staff):
    """Django adds an "s": "Suppression entrys", "Webhook deliverys" (issue 11, item 12)."""
    from django.apps import apps

    ours = {"audiences", "governance", "integrations"}
    wrong = {
        model._meta.label: str(model._meta.verbose_name_plural)
        for model in apps.get_models()
        if model._meta.app_label in ours
        and not model._meta.auto_created
        and re.search(r"[^aeiou]ys$|(s|sh|ch|x)s$", str(model._meta.verbose_name_plural))
        and not model.__name__.startswith("Historical")
    }
    assert wrong == {}

    index = staff.get(reverse("admin:index")).content.decode()
    assert "Suppression entries" in index and "entrys" not in index
    assert "Webhook deliveries" in index and "deliverys" not in index
