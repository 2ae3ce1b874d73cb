"""POST /api/v1/profiles/bulk: upsert by external_id, set-based, all-or-nothing."""

from __future__ import annotations

import factory

from audiences.models import Profile
from governance.models import AuditEvent, OutboxEvent, Outcome
from tests.audiences.helpers import queries_of
from tests.factories import ProfileFactory

URL = "/api/v1/profiles/bulk"


def row(external_id: str, **fields):
    return {"external_id": external_id, **fields}


def test_creates_profiles_and_answers_counts(api, sandbox):
    client = api("developer")
    body = {
        "profiles": [
            row(
                "c-1",
                email="ann@example.test",
                phone="+447700900123",
                first_name="Ann",
                last_name="Example",
                locale="en_GB",
                country="gb",
                region="UK",
                lifecycle_stage="customer",
                attributes={"plan": "pro"},
            ),
            row("c-2"),
        ]
    }

    response = client.post(URL, body, format="json")

    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 2, "updated": 0, "unchanged": 0, "errors": []}
    ann = Profile.objects.get(environment=sandbox, external_id="c-1")
    assert (ann.email, ann.country, ann.region, ann.attributes) == ("ann@example.test", "GB", "UK", {"plan": "pro"})
    bare = Profile.objects.get(environment=sandbox, external_id="c-2")
    assert bare.email is None and bare.attributes == {}


def test_accepts_a_bare_array_and_trailing_slash(api):
    response = api("developer").post(URL + "/", [row("c-1"), row("c-2")], format="json")

    assert response.status_code == 200
    assert response.json()["created"] == 2


def test_updates_only_what_changed_and_keeps_updated_at_of_unchanged(api, sandbox):
    # given
    same = ProfileFactory(external_id="same", region="UK", lifecycle_stage="customer")
    moving = ProfileFactory(external_id="moving", region="UK", lifecycle_stage="customer")
    same_updated_at, moving_updated_at = same.updated_at, moving.updated_at

    # when
    response = api("developer").post(
        URL,
        {"profiles": [row("same", region="UK"), row("moving", lifecycle_stage="lapsed"), row("new")]},
        format="json",
    )

    # then
    assert response.json() == {"created": 1, "updated": 1, "unchanged": 1, "errors": []}
    same.refresh_from_db()
    moving.refresh_from_db()
    assert same.updated_at == same_updated_at
    assert moving.updated_at > moving_updated_at
    assert moving.lifecycle_stage == "lapsed"
    assert moving.region == "UK", "a field left out keeps its value"
    assert moving.email == "moving@example.test"
    assert moving.created_at < moving.updated_at


def test_null_clears_a_field_and_attributes_are_replaced_not_merged(api):
    profile = ProfileFactory(external_id="c-1", attributes={"plan": "pro", "score": 3})

    response = api("developer").post(
        URL, {"profiles": [row("c-1", email=None, attributes={"plan": "free"})]}, format="json"
    )

    assert response.json()["updated"] == 1
    profile.refresh_from_db()
    assert profile.email is None
    assert profile.attributes == {"plan": "free"}


def test_sending_the_same_batch_twice_changes_nothing_the_second_time(api):
    client = api("developer")
    body = {"profiles": [row(f"c-{i}", region="EU", attributes={"n": i}) for i in range(5)]}
    assert client.post(URL, body, format="json").json()["created"] == 5
    before = list(Profile.objects.order_by("pk").values())

    second = client.post(URL, body, format="json")

    assert second.json() == {"created": 0, "updated": 0, "unchanged": 5, "errors": []}
    assert list(Profile.objects.order_by("pk").values()) == before


def test_writes_one_audit_event_with_counts_and_one_domain_event(api, sandbox):
    ProfileFactory(external_id="old")
    client = api("developer")

    client.post(URL, {"profiles": [row("old", region="EU"), row("new-1"), row("new-2")]}, format="json")

    audit = AuditEvent.objects.get(action="profile.ingest")
    assert audit.outcome == Outcome.ALLOWED
    assert audit.environment == sandbox
    assert audit.actor_user == client.user
    assert audit.changes == {"rows": 3, "created": 2, "updated": 1, "unchanged": 0}
    assert audit.request_id.startswith("req_")
    event = OutboxEvent.objects.get(type="profiles.ingested")
    assert event.data["created"] == 2 and event.data["updated"] == 1
    assert event.data["request_id"] == audit.request_id


def test_an_unchanged_batch_is_audited_but_emits_no_domain_event(api):
    ProfileFactory(external_id="c-1", region="UK")

    api("developer").post(URL, [row("c-1", region="UK")], format="json")

    assert AuditEvent.objects.filter(action="profile.ingest").count() == 1
    assert not OutboxEvent.objects.exists()


def test_profiles_of_other_environments_are_never_touched(api, sandbox, pilot):
    in_pilot = ProfileFactory(environment=pilot, external_id="c-1", region="NA")

    response = api("developer").post(URL, [row("c-1", region="EU")], format="json")

    assert response.json()["created"] == 1, "sandbox gets its own c-1"
    in_pilot.refresh_from_db()
    assert in_pilot.region == "NA"
    assert Profile.objects.filter(external_id="c-1").count() == 2


def test_is_set_based_the_same_queries_for_3_or_300_rows(api):
    client = api("developer")
    client.post(URL, [row("warm-up")], format="json")  # the token's last_used_at is written once
    ProfileFactory.create_batch(3, external_id=factory.Sequence(lambda n: f"a-{n}"))
    ProfileFactory.create_batch(50, external_id=factory.Sequence(lambda n: f"b-{n}"))

    small = queries_of(
        lambda: client.post(URL, [row("a-0", region="EU"), row("a-1", region="EU"), row("x-1")], format="json")
    )
    large_rows = [row(f"b-{i}", region="EU") for i in range(50)] + [row(f"y-{i}") for i in range(250)]
    large = queries_of(lambda: client.post(URL, large_rows, format="json"))

    # SQLite caps one INSERT at 999 parameters, so 300 rows need a few more INSERTs there;
    # what matters is that nothing grows with each row.
    inserts = [q for q in large if q.startswith("INSERT INTO") and "audiences_profile" in q]
    assert len(large) - len(inserts) == len(small) - 1, "\n".join(large)
    print("\n".join(q[:160] for q in large))
    assert len(inserts) <= 5
    selects = [q for q in large if q.startswith("SELECT") and '"audiences_profile"' in q.split("WHERE")[0]]
    assert len(selects) == 1, "one read of the existing profiles"
    assert Profile.objects.filter(region="EU").count() == 52


def test_ten_thousand_rows_in_one_batch(api, sandbox):
    client = api("developer")
    rows = [row(f"c-{i:05d}", email=f"c{i}@example.test", region="EU", attributes={"i": i}) for i in range(10_000)]

    response = client.post(URL, {"profiles": rows}, format="json")

    assert response.status_code == 200
    assert response.json()["created"] == 10_000
    assert Profile.objects.filter(environment=sandbox).count() == 10_000


def test_a_push_token_is_ingested_cleared_with_null_and_shown_masked(api, sandbox):
    # the push channel's contact point (issue 11, item 2)
    token = "9f3c" * 16
    client = api("developer")

    created = client.post(URL, {"profiles": [row("c-1", push_token=token)]}, format="json")
    shown = client.get("/api/v1/profiles/?external_id=c-1").json()["results"][0]
    blank = client.post(URL, {"profiles": [row("c-1", push_token="")]}, format="json")
    cleared = client.post(URL, {"profiles": [row("c-1", push_token=None)]}, format="json")

    assert created.json()["created"] == 1
    assert shown["push_token"] == "***9f3c" and shown["pii_masked"] is True
    assert blank.status_code == 422 and blank.json()["errors"][0]["pointer"] == "/profiles/0/push_token"
    assert cleared.json()["updated"] == 1
    assert Profile.objects.get(environment=sandbox, external_id="c-1").push_token is None
