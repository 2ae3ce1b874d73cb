"""A role that may not see personal data may not learn it by any door (issue 12, hole 2).

The attack: an analyst rebuilt a pilot profile's phone number in 70 previews with
`starts_with` + `external_id eq`. Value tests of personal data — email, phone, names, push
token, custom attributes and event properties marked `pii` in the catalogue — are refused
(403 `pii_filter_refused`, naming the condition) to every role but compliance reviewers,
whose use is audited as a PII read; presence checks and `email_domain` stay open."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audiences.models import Audience, CatalogueEntry, CatalogueKind
from audiences.reach import matching_queryset
from governance.models import AuditEvent, Outcome
from tests.factories import AudienceFactory, AudienceVersionFactory, ProfileFactory
from tests.refusals import denied_event, refused

pytestmark = pytest.mark.django_db

PREVIEW = "/api/v1/audiences/preview"
AUDIENCES = "/api/v1/audiences/"
PROFILES = "/api/v1/profiles/"


def only(external_id: str) -> dict:
    return {"attr": "external_id", "op": "eq", "value": external_id}


def preview(client, rules, channel="email"):
    return client.post(PREVIEW, {"rules": rules, "channel": channel}, format="json")


def mark_pii(environment, key: str, *, kind: str = CatalogueKind.ATTRIBUTE, event_type: str = "") -> None:
    now = timezone.now()
    CatalogueEntry.objects.update_or_create(
        environment=environment,
        kind=kind,
        event_type=event_type,
        key=key,
        defaults={"pii": True, "first_seen_at": now, "last_seen_at": now, "seen_count": 1},
    )


@pytest.fixture
def ann(sandbox):
    return ProfileFactory(
        environment=sandbox,
        external_id="ann",
        email="Ann.Example@Example.COM",
        phone="+447700900123",
        attributes={"backup_email": "ann@backup.test", "plan": "pro"},
    )


# --- the attack ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attr", "op", "value"),
    [
        ("phone", "starts_with", "+4477"),
        ("email", "starts_with", "a"),
        ("email", "contains", "@example"),
        ("email", "eq", "ann.example@example.com"),
        ("phone", "in", ["+447700900123"]),
        ("first_name", "eq", "Ann"),
        ("last_name", "neq", "Example"),
        ("push_token", "starts_with", "f"),
    ],
)
def test_an_analyst_cannot_test_personal_values_and_learns_nothing(api, ann, attr, op, value):
    client = api("analyst")

    response = preview(client, {"all": [only("ann"), {"attr": attr, "op": op, "value": value}]})

    body = refused(response, 403, "pii_filter_refused")
    assert "count" not in body and "sample" not in body and "waterfall" not in body
    (error,) = body["errors"]
    assert (error["pointer"], error["field"], error["code"]) == ("/rules/all/1/op", attr, "pii_filter_refused")
    assert "email_domain" in error["hint"] and "is_null" in error["hint"]
    assert attr in body["detail"]
    assert not AuditEvent.objects.filter(action="profile.pii_read").exists()


def test_every_value_test_is_named_at_once(api, ann):
    rules = {
        "any": [
            {"attr": "email", "op": "starts_with", "value": "a"},
            {"not": {"attr": "phone", "op": "contains", "value": "77"}},
        ]
    }

    body = refused(preview(api("operator"), rules), 403, "pii_filter_refused")

    assert [e["pointer"] for e in body["errors"]] == ["/rules/any/0/op", "/rules/any/1/not/op"]


def test_presence_checks_and_the_email_domain_stay_open(api, sandbox, ann):
    ProfileFactory(environment=sandbox, external_id="bob", email="bob@other.test")
    ProfileFactory(environment=sandbox, external_id="nomail", email=None)
    ProfileFactory(environment=sandbox, external_id="broken", email="example.com")  # no "@": no domain
    client = api("analyst")

    def count(rules):
        response = preview(client, rules, channel="sms")
        assert response.status_code == 200, response.content
        return response.json()["count"]

    assert count({"attr": "email", "op": "is_null", "value": False}) == 3
    assert count({"attr": "phone", "op": "is_null", "value": True}) == 0
    assert count({"attr": "email_domain", "op": "eq", "value": "example.com"}) == 1  # case-insensitive
    assert count({"attr": "email_domain", "op": "in", "value": ["EXAMPLE.com", "other.test"]}) == 2
    assert count({"attr": "email_domain", "op": "neq", "value": "example.com"}) == 3  # missing counts
    assert count({"attr": "email_domain", "op": "is_null", "value": True}) == 2
    assert count({"attr": "email_domain", "op": "starts_with", "value": "exa"}) == 1
    assert not AuditEvent.objects.filter(action="profile.pii_read").exists()


def test_the_email_domain_compiles_into_the_one_query(sandbox, ann, django_assert_num_queries):
    rules = {
        "all": [
            {"attr": "email_domain", "op": "eq", "value": "example.com"},
            {"attr": "region", "op": "eq", "value": "UK"},
        ]
    }

    queryset = matching_queryset(sandbox, rules, now=timezone.now(), live_versions={})
    with django_assert_num_queries(1):
        assert list(queryset.values_list("external_id", flat=True)) == ["ann"]


# --- compliance reviewers -------------------------------------------------------------------------------


def test_a_compliance_reviewer_may_and_the_use_is_audited_as_a_pii_read(api, ann):
    client = api("compliance")

    response = preview(client, {"all": [only("ann"), {"attr": "phone", "op": "starts_with", "value": "+4477"}]})

    assert response.status_code == 200, response.content
    assert response.json()["count"] == 1
    event = AuditEvent.objects.filter(action="profile.pii_read", outcome=Outcome.ALLOWED).first()
    assert event is not None and event.actor_user_id == client.user.pk
    assert event.changes["through"] == "audience.preview"
    assert event.changes["conditions"] == [{"pointer": "/rules/all/1/op"}]


def test_a_compliance_reviewer_validates_a_saved_audience_with_a_pii_filter_audited(api, sandbox, ann):
    audience = AudienceFactory(environment=sandbox, rules={"attr": "email", "op": "contains", "value": "example"})

    response = api("compliance").post(f"{AUDIENCES}{audience.pk}/validate", format="json")

    assert response.status_code == 200, response.content
    assert AuditEvent.objects.get(action="profile.pii_read").changes["through"] == "audience.validate"


# --- custom attributes and event properties marked as personal data --------------------------------------


def test_a_custom_attribute_marked_pii_is_filter_restricted(api, sandbox, ann):
    mark_pii(sandbox, "backup_email")
    client = api("analyst")

    body = refused(
        preview(client, {"attr": "attributes.backup_email", "op": "contains", "value": "ann"}),
        403,
        "pii_filter_refused",
    )
    assert body["errors"][0]["field"] == "attributes.backup_email"
    present = preview(client, {"attr": "attributes.backup_email", "op": "is_null", "value": False})
    assert present.status_code == 200 and present.json()["count"] == 1
    other = preview(client, {"attr": "attributes.plan", "op": "eq", "value": "pro"})  # not marked
    assert other.status_code == 200 and other.json()["count"] == 1


def test_an_unmarked_custom_attribute_stays_open(api, ann):
    response = preview(api("analyst"), {"attr": "attributes.backup_email", "op": "contains", "value": "ann"})

    assert response.status_code == 200


def test_an_event_property_marked_pii_is_filter_restricted(api, sandbox, ann):
    mark_pii(sandbox, "card_holder", kind=CatalogueKind.EVENT_PROPERTY, event_type="purchase")
    rules = {"event": "purchase", "where": [{"property": "card_holder", "op": "eq", "value": "Ann Example"}]}

    body = refused(preview(api("analyst"), rules), 403, "pii_filter_refused")

    assert body["errors"][0]["pointer"] == "/rules/where/0/op"
    assert body["errors"][0]["field"] == "purchase.card_holder"


def test_a_custom_attribute_marked_pii_is_masked_in_every_profile_representation(api, sandbox, ann):
    mark_pii(sandbox, "backup_email")

    listed = api("analyst").get(PROFILES).json()["results"][0]
    one = api("operator").get(f"{PROFILES}{ann.pk}").json()
    seen = api("compliance").get(f"{PROFILES}{ann.pk}").json()

    assert listed["attributes"] == {"backup_email": "***", "plan": "pro"}
    assert one["attributes"] == {"backup_email": "***", "plan": "pro"} and one["pii_masked"] is True
    assert seen["attributes"]["backup_email"] == "ann@backup.test" and seen["pii_masked"] is False


def test_the_admin_profile_page_masks_marked_attributes_for_staff_who_may_not_see_pii(client, sandbox, ann):
    from django.urls import reverse

    from tests.factories import UserFactory

    mark_pii(sandbox, "backup_email")
    client.force_login(UserFactory(username="dev-staff", is_staff=True, groups=["developer"]))

    page = client.get(reverse("admin:audiences_profile_change", args=[ann.pk]))

    assert page.status_code == 200
    assert "ann@backup.test" not in page.content.decode()


# --- looking a person up by email ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["analyst", "operator", "developer", "approver"])
def test_looking_a_profile_up_by_email_is_refused_without_pii(api, ann, who):
    body = refused(api(who).get(f"{PROFILES}?email=Ann.Example@Example.COM"), 403, "pii_lookup_refused")

    assert body["errors"][0]["pointer"] == "?email"
    assert "external_id" in body["hint"]


def test_a_compliance_reviewer_looks_a_profile_up_by_email_audited(api, ann):
    response = api("compliance").get(f"{PROFILES}?email=Ann.Example@Example.COM")

    assert response.status_code == 200
    assert [p["external_id"] for p in response.json()["results"]] == ["ann"]
    assert AuditEvent.objects.filter(action="profile.pii_read").exists()


# --- every door: saved audiences, saving, publishing, in_audience, the portal ------------------------------


@pytest.fixture
def saved(sandbox, ann):
    """An audience saved before the rule existed, testing a phone number."""
    return AudienceFactory(
        environment=sandbox,
        name="Phones",
        owner_team__name="growth",
        rules={"all": [only("ann"), {"attr": "phone", "op": "starts_with", "value": "+4477"}]},
    )


def test_a_saved_audience_s_preview_validate_and_publish_are_refused(api, saved):
    client = api("operator")

    for action in ("preview", "validate", "publish"):
        body = refused(client.post(f"{AUDIENCES}{saved.pk}/{action}", format="json"), 403, "pii_filter_refused")
        assert body["errors"][0]["pointer"] == "/rules/all/1/op", action
    assert Audience.objects.get(pk=saved.pk).live_version_id is None
    denied_event(client.user, "audience.publish")


def test_saving_rules_one_may_not_use_is_refused_and_audited(api, sandbox, ann):
    client = api("operator")
    body = {
        "name": "Phones",
        "channel": "sms",
        "purpose": "probe",
        "description": "A probe.",
        "rules": {"attr": "phone", "op": "starts_with", "value": "+44"},
    }

    refused(client.post(AUDIENCES, body, format="json"), 403, "pii_filter_refused")
    assert not Audience.objects.filter(name="Phones").exists()
    denied_event(client.user, "audience.create")

    audience = AudienceFactory(environment=sandbox, owner_team__name="growth")
    refused(
        client.patch(f"{AUDIENCES}{audience.pk}", {"rules": body["rules"]}, format="json"), 403, "pii_filter_refused"
    )
    assert Audience.objects.get(pk=audience.pk).rules == audience.rules
    denied_event(client.user, "audience.edit")


@pytest.mark.parametrize("key", [None, "copy-1"])
def test_copying_an_audience_with_such_rules_is_refused_and_audited(api, saved, key):
    client = api("operator2")
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}

    refused(client.post(f"{AUDIENCES}{saved.pk}/copy", {}, format="json", **headers), 403, "pii_filter_refused")
    denied_event(client.user, "audience.copy")  # once, also inside an idempotency claim


def test_in_audience_of_an_audience_that_tests_personal_data_is_refused(api, sandbox, saved, ann):
    AudienceVersionFactory(audience=saved, live=True, memberships=[ann])
    wrapper = {"all": [only("ann"), {"in_audience": saved.pk}]}

    body = refused(preview(api("analyst"), wrapper), 403, "pii_filter_refused")

    assert body["errors"][0]["pointer"] == "/rules/all/1/in_audience"
    assert body["errors"][0]["field"] == f"in_audience {saved.pk}"
    # Through a second audience too.
    middle = AudienceFactory(environment=sandbox, rules={"in_audience": saved.pk})
    AudienceVersionFactory(audience=middle, live=True)
    refused(preview(api("analyst"), {"in_audience": middle.pk}), 403, "pii_filter_refused")


def test_the_portal_preview_and_validate_say_it_in_words(sandbox, saved, client):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="portal-analyst", groups=["analyst", "growth"]))

    import json

    preview_page = client.post(
        "/audiences/preview/",
        {"rules": json.dumps(saved.rules), "channel": "sms"},
        HTTP_HX_REQUEST="true",
    )
    validate_page = client.post(f"/audiences/{saved.pk}/validate/", {}, HTTP_HX_REQUEST="true")

    for page in (preview_page, validate_page):
        assert page.status_code == 403
        text = page.content.decode()
        assert "may not filter on personal data" in text and "pii_filter_refused" in text


def test_rolling_back_to_a_version_that_tests_personal_data_is_refused(api, sandbox, saved, ann):
    AudienceVersionFactory(audience=saved, live=True, memberships=[ann])
    saved.rules = only("ann")
    saved.save(update_fields=["rules"])
    AudienceVersionFactory(audience=saved, live=True, memberships=[ann])
    client = api("operator")

    refused(client.post(f"{AUDIENCES}{saved.pk}/rollback", {"version": 1}, format="json"), 403, "pii_filter_refused")
    denied_event(client.user, "audience.rollback")


def test_the_admin_site_refuses_such_rules_on_the_form_through_the_same_service(client, sandbox, ann):
    import json

    from django.urls import reverse

    from tests.factories import UserFactory, team

    client.force_login(UserFactory(username="site-admin", is_staff=True, groups=["admin"]))
    form = {
        "environment": sandbox.pk,
        "name": "Admin probe",
        "owner_team": team("growth").pk,
        "channel": "email",
        "purpose": "probe",
        "description": "A probe.",
        "rules": json.dumps({"attr": "email", "op": "starts_with", "value": "a"}),
        "_save": "Save",
    }

    response = client.post(reverse("admin:audiences_audience_add"), form)

    assert response.status_code == 200
    assert "personal data" in response.content.decode()
    assert not Audience.objects.filter(name="Admin probe").exists()


def test_in_audience_of_an_audience_that_tests_a_marked_custom_attribute_is_refused(api, sandbox, ann):
    mark_pii(sandbox, "backup_email")
    inner = AudienceFactory(
        environment=sandbox, rules={"attr": "attributes.backup_email", "op": "contains", "value": "ann"}
    )
    AudienceVersionFactory(audience=inner, live=True, memberships=[ann])

    refused(preview(api("analyst"), {"in_audience": inner.pk}), 403, "pii_filter_refused")
