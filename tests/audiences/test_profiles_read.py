"""GET /api/v1/profiles/, /profiles/{id} and /profiles/{id}/consent-history: scoped to
the token's environment, PII masked except for compliance reviewers, unmasked reads audited."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from audiences.models import ConsentChange, Profile
from governance.models import AuditEvent
from tests.audiences.helpers import queries_of
from tests.factories import ConsentFactory, ProfileFactory
from tests.refusals import refused

LIST = "/api/v1/profiles/"


@pytest.fixture
def ann(db):
    profile = ProfileFactory(
        external_id="ann", email="jane@example.test", phone="+447700900123", first_name="Ann", last_name="Example"
    )
    ConsentFactory(
        profile=profile,
        channel="email",
        status="granted",
        captured_at=datetime.fromisoformat("2026-03-01T09:30:00+00:00"),
    )
    return profile


def test_lists_profiles_of_the_tokens_environment_with_pii_masked(api, ann, pilot):
    ProfileFactory(environment=pilot, external_id="elsewhere")

    response = api("analyst").get(LIST)

    assert response.status_code == 200
    [item] = response.json()["results"]
    assert item["external_id"] == "ann"
    assert (item["email"], item["phone"], item["first_name"], item["last_name"]) == (
        "j***@e***.test",
        "***23",
        "A***",
        "E***",
    )
    assert item["pii_masked"] is True
    assert item["consent"] == {"email": {"status": "granted", "captured_at": "2026-03-01T09:30:00Z"}}
    assert not AuditEvent.objects.filter(action="profile.pii_read").exists(), "masked reads are not PII reads"


@pytest.mark.parametrize("who", ["analyst", "operator", "approver", "developer", "admin"])
def test_every_role_but_compliance_sees_masked_pii(api, ann, who):
    item = api(who).get(f"/api/v1/profiles/{ann.pk}").json()

    assert item["email"] == "j***@e***.test"
    assert item["pii_masked"] is True


def test_compliance_reviewer_sees_pii_and_each_read_is_audited_once(api, ann):
    others = ProfileFactory.create_batch(2)
    client = api("compliance")

    listed = client.get(LIST)
    detail = client.get(f"/api/v1/profiles/{ann.pk}")

    assert listed.json()["results"][-1]["email"] == "jane@example.test"
    assert detail.json()["email"] == "jane@example.test"
    assert detail.json()["pii_masked"] is False
    list_read, detail_read = AuditEvent.objects.filter(action="profile.pii_read").order_by("id")
    assert sorted(list_read.changes["profile_ids"]) == sorted([ann.pk, *(p.pk for p in others)])
    assert list_read.request_id == listed["X-Request-ID"]
    assert list_read.actor_user == client.user
    assert detail_read.changes["profile_ids"] == [ann.pk]
    assert (detail_read.target_type, detail_read.target_id) == ("audiences.profile", str(ann.pk))


def test_an_empty_page_is_no_pii_read(api):
    api("compliance").get(LIST)

    assert not AuditEvent.objects.filter(action="profile.pii_read").exists()


def test_a_user_without_a_role_may_not_list(api, ann):
    response = api("nobody").get(LIST)

    refused(response, 403, "permission_denied")


def test_list_queries_do_not_grow_with_the_page(api, django_assert_num_queries):
    for profile in ProfileFactory.create_batch(30):
        ConsentFactory(profile=profile, channel="sms")
    for who in ("analyst", "compliance"):
        client = api(who)
        client.get(LIST + "?limit=1")  # the token's last_used_at is written on first use
        small = queries_of(lambda client=client: client.get(LIST + "?limit=2"))
        # token, 2× permissions, roles, profiles, consents; for a compliance reviewer also the
        # PII-read audit: savepoint, chain lock (PostgreSQL), chain head, insert, release
        assert len(small) <= (11 if who == "compliance" else 6), "\n".join(small)

        with django_assert_num_queries(len(small)):
            response = client.get(LIST + "?limit=30")

        assert len(response.json()["results"]) == 30


def test_cursor_pagination(api):
    ProfileFactory.create_batch(5)
    client = api("analyst")

    first = client.get(LIST + "?limit=2").json()
    second = client.get(first["next"]).json()

    assert len(first["results"]) == len(second["results"]) == 2
    assert first["results"][-1]["id"] > second["results"][0]["id"], "newest first"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("external_id=a", {"a"}),
        ("email=b@example.test", {"b"}),
        ("region=EU", {"b", "c"}),
        ("country=de", {"b"}),
        ("locale=pt_BR", {"c"}),
        ("lifecycle_stage=lapsed", {"c"}),
        ("region=EU&lifecycle_stage=customer", {"b"}),
    ],
)
def test_filters(api, query, expected):
    ProfileFactory(external_id="a", email="a@example.test", region="UK", country="GB", locale="en_GB")
    ProfileFactory(external_id="b", email="b@example.test", region="EU", country="DE", locale="de_DE")
    ProfileFactory(external_id="c", region="EU", country="BR", locale="pt_BR", lifecycle_stage="lapsed")

    # Looking a person up by email is for those who may see PII (issue 12; the analyst's 403 is
    # in tests/audiences/test_pii_filters.py).
    who = "compliance" if query.startswith("email=") else "analyst"
    response = api(who).get(f"{LIST}?{query}")

    assert response.status_code == 200
    assert {item["external_id"] for item in response.json()["results"]} == expected


def test_updated_since_and_before(api):
    now = timezone.now()
    ProfileFactory(external_id="old", updated_at=now - timedelta(days=3))
    ProfileFactory(external_id="new", updated_at=now)
    client = api("analyst")
    cut = (now - timedelta(days=1)).isoformat().replace("+00:00", "Z")

    since = client.get(LIST, {"updated_since": cut}).json()["results"]
    before = client.get(LIST, {"updated_before": cut}).json()["results"]

    assert [p["external_id"] for p in since] == ["new"]
    assert [p["external_id"] for p in before] == ["old"]


def test_an_unknown_filter_is_400_not_everything(api, ann):
    response = api("analyst").get(LIST + "?regoin=EU")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "unknown_query_parameter"
    assert "region" in body["hint"]


def test_a_bad_filter_value_is_400(api, ann):
    response = api("analyst").get(LIST + "?region=EUROPE")

    assert response.status_code == 400
    assert response.json()["errors"][0]["pointer"] == "/region"


def test_detail_of_an_unknown_id_is_404(api):
    response = api("analyst").get("/api/v1/profiles/999999")

    assert response.status_code == 404
    assert response.json()["code"] == "profile_not_found"


def test_a_profile_of_another_environment_is_404_for_its_detail_and_its_consent_history(api, sandbox, pilot):
    elsewhere = ProfileFactory(environment=sandbox, external_id="sandbox-only")
    client = api("developer", pilot)

    for path in (f"/api/v1/profiles/{elsewhere.pk}", f"/api/v1/profiles/{elsewhere.pk}/consent-history"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "profile_not_found"
        assert "sandbox-only" not in response.content.decode()


def test_a_profile_is_found_by_its_primary_key_alone(api, ann, django_assert_num_queries):
    """The lookup's WHERE names the primary key only (the environment is compared after):
    with both, a planner whose statistics lag behind a large load picks the environment's
    index and reads every profile of the environment for one row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api("developer")
    client.get(f"/api/v1/profiles/{ann.pk}")  # tokens and permissions cached
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/api/v1/profiles/{ann.pk}").status_code == 200

    lookups = [q["sql"] for q in queries.captured_queries if 'FROM "audiences_profile"' in q["sql"]]
    assert len(lookups) == 1
    where = lookups[0].rsplit("WHERE", 1)[1]
    assert '"audiences_profile"."id" =' in where and "environment_id" not in where


def test_consent_history_newest_first_and_paginated(api, ann):
    client = api("developer")
    for day, status in enumerate(["granted", "denied", "granted"], start=1):
        client.post(
            "/api/v1/consent/sync",
            [
                {
                    "external_id": "ann",
                    "channel": "sms",
                    "status": status,
                    "source": f"s{day}",
                    "captured_at": f"2026-04-0{day}T00:00:00Z",
                }
            ],
            format="json",
        )
    reader = api("analyst")

    page = reader.get(f"/api/v1/profiles/{ann.pk}/consent-history?limit=2").json()
    rest = reader.get(page["next"]).json()

    assert [(c["source"], c["previous_status"], c["status"]) for c in page["results"] + rest["results"]] == [
        ("s3", "denied", "granted"),
        ("s2", "granted", "denied"),
        ("s1", None, "granted"),
    ]
    assert set(page["results"][0]) == {
        "id",
        "channel",
        "status",
        "previous_status",
        "source",
        "captured_at",
        "recorded_at",
        "request_id",
    }
    assert page["results"][0]["request_id"].startswith("req_")


def test_consent_history_queries_do_not_grow_with_the_page(api, ann, django_assert_num_queries):
    ConsentChange.objects.bulk_create(
        ConsentChange(profile=ann, channel="email", status="granted", captured_at=timezone.now()) for _ in range(20)
    )
    client = api("analyst")
    url = f"/api/v1/profiles/{ann.pk}/consent-history"
    client.get(url)
    small = queries_of(lambda: client.get(url + "?limit=1"))

    with django_assert_num_queries(len(small)):
        client.get(url + "?limit=20")


def test_profiles_are_scoped_even_for_the_same_external_id(api, sandbox, pilot):
    ProfileFactory(environment=sandbox, external_id="twin", region="EU")
    ProfileFactory(environment=pilot, external_id="twin", region="NA")

    results = api("analyst", pilot).get(LIST + "?external_id=twin").json()["results"]

    assert [r["region"] for r in results] == ["NA"]
    assert Profile.objects.filter(external_id="twin").count() == 2


def test_the_portal_session_works_too_scoped_to_the_session_environment(client, persona, ann, pilot):
    ProfileFactory(environment=pilot, external_id="in-pilot")
    client.force_login(persona("analyst"))

    sandbox_ids = [p["external_id"] for p in client.get(LIST).json()["results"]]
    session = client.session
    session["environment"] = "pilot"
    session.save()
    pilot_ids = [p["external_id"] for p in client.get(LIST).json()["results"]]

    assert sandbox_ids == ["ann"]
    assert pilot_ids == ["in-pilot"]
