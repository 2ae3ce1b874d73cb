"""The catalogue of custom attribute keys, event types and event properties (issue 11,
item 4): kept by ingestion in one statement per batch, rebuilt by a sandbox reset, backfilled
for existing data; offered by the builder; did-you-mean WARNINGS in preview and validate;
`pii` set by admins through a service, audited."""

from __future__ import annotations

import importlib
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audiences.catalogue import selectors as catalogue
from audiences.catalogue import services as catalogue_services
from audiences.models import CatalogueEntry
from governance.actors import Actor
from governance.models import AuditEvent, Door, Outcome
from tests.factories import AudienceFactory, ProfileEventFactory, ProfileFactory, UserFactory

pytestmark = pytest.mark.django_db

PROFILES = "/api/v1/profiles/bulk"
EVENTS = "/api/v1/profile-events/bulk"
PREVIEW = "/api/v1/audiences/preview"


def entries(environment, kind=None):
    found = CatalogueEntry.objects.filter(environment=environment)
    if kind:
        found = found.filter(kind=kind)
    return {(e.event_type + "." if e.event_type else "") + e.key: (e.types, e.seen_count) for e in found}


def event(external_id, type_, **properties):
    return {"external_id": external_id, "type": type_, "occurred_at": "2026-03-04T17:02:00Z", "properties": properties}


# --- kept by ingestion ---------------------------------------------------------------------------


def test_profile_ingestion_catalogues_each_attribute_key_with_its_types_and_count(api, sandbox, pilot):
    client = api("developer")
    first = [
        {"external_id": "a", "attributes": {"loyalty_tier": "gold", "orders": 3}},
        {"external_id": "b", "attributes": {"loyalty_tier": "silver", "tags": ["vip"]}},
        {"external_id": "c"},
    ]
    assert client.post(PROFILES, first, format="json").status_code == 200
    before = CatalogueEntry.objects.get(environment=sandbox, key="loyalty_tier")

    client.post(
        PROFILES, [{"external_id": "d", "attributes": {"orders": "many", "vip": True, "note": None}}], format="json"
    )

    assert entries(sandbox) == {
        "loyalty_tier": (["text"], 2),
        "orders": (["text", "number"], 2),
        "tags": (["list"], 1),
        "vip": (["true/false"], 1),
        "note": (["null"], 1),
    }
    after = CatalogueEntry.objects.get(environment=sandbox, key="orders")
    assert after.first_seen_at == before.first_seen_at and after.last_seen_at > after.first_seen_at
    assert entries(pilot) == {}  # per environment


def test_event_ingestion_catalogues_types_and_their_properties(api, sandbox):
    ProfileFactory(external_id="c-1")
    batch = [
        event("c-1", "purchase", amount=42.5, currency="GBP"),
        event("c-1", "purchase", amount=10),
        event("c-1", "page_view"),
    ]

    assert api("developer").post(EVENTS, batch, format="json").status_code == 200

    assert entries(sandbox) == {
        "purchase": ([], 2),
        "page_view": ([], 1),
        "purchase.amount": (["number"], 2),
        "purchase.currency": (["text"], 1),
    }


@pytest.mark.parametrize("url", [PROFILES, EVENTS])
def test_the_catalogue_costs_one_statement_per_batch_whatever_its_size(api, sandbox, url):
    client = api("developer")
    known = [p.external_id for p in ProfileFactory.create_batch(300, environment=sandbox)]

    def batch(size: int) -> list[dict]:
        if url == PROFILES:
            return [{"external_id": f"n-{size}-{i}", "attributes": {f"k{i % 7}": i}} for i in range(size)]
        return [event(known[i], f"t{i % 5}", p=i) for i in range(size)]

    counts = []
    for size in (3, 300):
        with CaptureQueriesContext(connection) as ctx:
            assert client.post(url, batch(size), format="json").status_code == 200
        counts.append(sum("catalogueentry" in q["sql"].lower() for q in ctx.captured_queries))
    assert counts == [1, 1]


def test_a_sandbox_reset_rebuilds_the_catalogue_and_keeps_what_admins_marked(sandbox):
    system = Actor.system(sandbox, door=Door.CLI)
    ProfileFactory(environment=sandbox, attributes={"gone_key": 1})
    catalogue_services.record_profile_attributes(
        environment=sandbox, rows=[{"attributes": {"gone_key": 1, "secret_key": "x"}}], seen_at=timezone.now()
    )
    CatalogueEntry.objects.filter(key="secret_key").update(pii=True)
    from sandbox.services import sandbox_reset

    sandbox_reset(actor=system, environment=sandbox, profiles=50, seed=3)

    found = entries(sandbox)
    assert "gone_key" not in found
    assert found["secret_key"] == ([], 0) and CatalogueEntry.objects.get(key="secret_key").pii
    # a scenario profile holds a null loyalty tier; one holds no attributes at all
    assert found["loyalty_tier"][0] == ["text", "null"] and found["scenario"][1] == 48
    assert found["lifetime_value"][0] == ["number"] and found["app_installed"][0] == ["true/false"]
    assert {"purchase", "cart_abandoned", "purchase.amount", "cart_abandoned.cart_value"} <= set(found)


def test_the_migration_backfills_existing_data_set_based(sandbox, pilot):
    ProfileFactory(environment=sandbox, attributes={"plan": "pro", "seats": 4})
    ProfileFactory(environment=pilot, attributes={"plan": 7})
    ProfileEventFactory(profile=ProfileFactory(environment=sandbox), type="signup", properties={"via": "web"})
    backfill = importlib.import_module("audiences.migrations.0010_catalogue_backfill")
    CatalogueEntry.objects.all().delete()

    editor = SimpleNamespace(connection=connection)  # what RunPython hands over, as far as the backfill reads it
    with CaptureQueriesContext(connection) as ctx:
        backfill.backfill(None, editor)

    assert len([q for q in ctx.captured_queries if "INSERT" in q["sql"]]) == 2  # one per source, not per row
    assert entries(sandbox) == {
        "plan": (["text"], 1),
        "seats": (["number"], 1),
        "signup": ([], 1),
        "signup.via": (["text"], 1),
    }
    assert entries(pilot) == {"plan": (["number"], 1)}
    backfill.forget(django_apps(), None)
    assert not CatalogueEntry.objects.exists()


def django_apps():
    from django.apps import apps

    return apps


# --- offered by the builder --------------------------------------------------------------------


def test_the_builder_offers_the_keys_and_event_types_of_the_environment(sandbox):
    catalogue_services.record_profile_attributes(
        environment=sandbox,
        rows=[{"attributes": {"loyalty_tier": "gold"}}, {"attributes": {"loyalty_tier": "silver", "ltv": 3}}],
        seen_at=timezone.now(),
    )
    catalogue_services.record_events(
        environment=sandbox, events=[{"type": "purchase", "properties": {"amount": 5}}], seen_at=timezone.now()
    )

    offered = catalogue.builder_catalogue(sandbox)

    assert offered["custom_attributes"] == [
        {"key": "loyalty_tier", "types": ["text"], "seen": 2},
        {"key": "ltv", "types": ["number"], "seen": 1},
    ]
    assert offered["event_types"] == [
        {"key": "purchase", "seen": 1, "properties": [{"key": "amount", "types": ["number"], "seen": 1}]}
    ]


# --- did-you-mean warnings ------------------------------------------------------------------------


@pytest.fixture
def seen(sandbox):
    catalogue_services.record_profile_attributes(
        environment=sandbox,
        rows=[{"attributes": {"loyalty_tier": "gold", "lifetime_value": 12.5}}],
        seen_at=timezone.now(),
    )
    catalogue_services.record_events(
        environment=sandbox,
        events=[{"type": "purchase", "properties": {"amount": 5, "currency": "GBP"}}, {"type": "page_view"}],
        seen_at=timezone.now(),
    )


TYPOS = {
    "all": [
        {"attr": "attributes.loyalty_teir", "op": "eq", "value": "gold"},
        {"attr": "attributes.lifetime_value", "op": "gt", "value": 1},
        {"event": "purchse", "within_days": 7},
        {"event": "purchase", "where": [{"property": "total", "op": "gte", "value": 100}]},
    ]
}


def test_a_preview_warns_about_names_nobody_has_with_the_nearest_known_ones(api, seen):
    response = api("analyst").post(PREVIEW, {"rules": TYPOS, "channel": "email"}, format="json")

    assert response.status_code == 200, response.content  # a warning, not an error: a key may be new
    warnings = {w["pointer"]: w for w in response.json()["warnings"] if "pointer" in w}
    assert set(warnings) == {"/rules/all/0/attr", "/rules/all/2/event", "/rules/all/3/where/0/property"}
    attr, typo, prop = (warnings[p] for p in sorted(warnings))
    assert attr["code"] == "unknown_custom_attribute"
    assert "'loyalty_teir'" in attr["message"] and "did you mean 'loyalty_tier'?" in attr["message"]
    assert "loyalty_tier, lifetime_value" in attr["hint"] or "lifetime_value, loyalty_tier" in attr["hint"]
    assert (typo["code"], "did you mean 'purchase'?" in typo["message"]) == ("unknown_event_type", True)
    assert prop["code"] == "unknown_event_property" and "'total'" in prop["message"]
    assert "Known properties of 'purchase' events: amount, currency." in prop["hint"]


def test_known_names_give_no_warning_and_cost_one_query(seen, sandbox):
    rules = {"all": [{"attr": "attributes.loyalty_tier", "op": "eq", "value": "gold"}, {"event": "purchase"}]}

    with CaptureQueriesContext(connection) as ctx:
        assert catalogue.unknown_names(sandbox, rules) == []
    assert len(ctx.captured_queries) == 1
    with CaptureQueriesContext(connection) as none:
        assert catalogue.unknown_names(sandbox, {"attr": "region", "op": "eq", "value": "EU"}) == []
    assert len(none.captured_queries) == 0


def test_an_empty_catalogue_says_nothing_was_seen_yet(sandbox):
    (warning,) = catalogue.unknown_names(sandbox, {"attr": "attributes.plan", "op": "eq", "value": "pro"})

    assert "did you mean" not in warning["message"]
    assert "Nothing in sandbox has carried a custom attribute yet." in warning["hint"]


def test_validate_warns_about_unknown_names_and_stays_valid(api, sandbox, seen):
    ProfileFactory(environment=sandbox, attributes={"loyalty_tier": "gold"})
    audience = AudienceFactory(environment=sandbox, name="Typos", rules=TYPOS)

    response = api("analyst").post(f"/api/v1/audiences/{audience.pk}/validate")

    checks = {c["code"]: c for c in response.json()["checks"]}
    known = checks["known_names"]
    assert (known["status"], known["count"]) == ("warning", 3)
    assert [e["pointer"] for e in known["errors"]] == [
        "/rules/all/0/attr",
        "/rules/all/2/event",
        "/rules/all/3/where/0/property",
    ]
    assert "did you mean 'loyalty_tier'?" in known["message"]
    assert response.json()["valid"] is True or checks["size"]["status"] == "failed"


# --- pii, set by admins --------------------------------------------------------------------------


def test_an_admin_marks_a_key_as_personal_data_in_the_admin_site_audited(client, sandbox, seen):
    root = UserFactory(username="root", is_staff=True, is_superuser=True, groups=["admin"])
    client.force_login(root)
    entry = CatalogueEntry.objects.get(environment=sandbox, key="lifetime_value")
    url = reverse("admin:audiences_catalogueentry_change", args=[entry.pk])

    page = client.get(url)
    response = client.post(url, {"pii": "on", "_save": "Save"})

    assert page.status_code == 200 and "lifetime_value" in page.content.decode()
    assert response.status_code == 302, response.content.decode()[:2000]
    entry.refresh_from_db()
    assert entry.pii is True
    event = AuditEvent.objects.get(action="catalogue.mark_pii")
    assert (
        event.door == "admin" and event.changes["before"] == {"pii": False} and event.changes["after"] == {"pii": True}
    )
    assert client.get(reverse("admin:audiences_catalogueentry_add")).status_code == 403


def test_marking_personal_data_needs_the_admin_role_and_a_refusal_is_audited(persona, sandbox, seen):
    entry = CatalogueEntry.objects.get(environment=sandbox, key="lifetime_value")
    developer = Actor(user=persona("developer"), environment=sandbox, door=Door.API)

    with pytest.raises(Exception) as refused:
        catalogue_services.catalogue_entry_mark_pii(actor=developer, entry=entry, pii=True)

    assert getattr(refused.value, "code", None) == "permission_denied"
    entry.refresh_from_db()
    assert entry.pii is False
    assert AuditEvent.objects.get(action="catalogue.mark_pii").outcome == Outcome.DENIED


def test_first_and_last_seen_widen_and_never_narrow(sandbox):
    now = timezone.now()
    record = catalogue_services.record_profile_attributes
    record(environment=sandbox, rows=[{"attributes": {"k": 1}}], seen_at=now)
    record(environment=sandbox, rows=[{"attributes": {"k": 1}}], seen_at=now - timedelta(days=1))

    entry = CatalogueEntry.objects.get(key="k")

    assert (entry.first_seen_at, entry.last_seen_at, entry.seen_count) == (now - timedelta(days=1), now, 2)


def test_a_name_with_nothing_close_says_so_in_a_sentence(seen, sandbox):
    (warning,) = catalogue.unknown_names(
        sandbox, {"event": "purchase", "where": [{"property": "total", "op": "gt", "value": 1}]}
    )

    assert warning["message"] == (
        "No 'purchase' event received in sandbox has the property 'total'. The condition matches nobody."
    )
