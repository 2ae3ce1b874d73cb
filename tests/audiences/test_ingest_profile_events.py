"""POST /api/v1/profile-events/bulk: behavioural events of known profiles, deduplicated by event_id."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from audiences.models import ProfileEvent
from governance.models import AuditEvent
from tests.audiences.helpers import db_state, queries_of
from tests.factories import ProfileEventFactory, ProfileFactory

URL = "/api/v1/profile-events/bulk"


def event(external_id: str = "c-1", **fields):
    return {"external_id": external_id, "type": "cart_abandoned", "occurred_at": "2026-03-04T17:02:00Z", **fields}


def test_stores_events_of_known_profiles(api):
    profile = ProfileFactory(external_id="c-1")

    response = api("developer").post(
        URL, {"events": [event(properties={"cart_value": 59.9}), event(type="purchase")]}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 2, "duplicate": 0, "errors": []}
    stored = ProfileEvent.objects.get(profile=profile, type="cart_abandoned")
    assert stored.properties == {"cart_value": 59.9}
    assert stored.occurred_at.isoformat() == "2026-03-04T17:02:00+00:00"
    assert stored.event_id is None


def test_an_event_id_sent_again_counts_duplicate_not_error(api):
    ProfileFactory(external_id="c-1")
    client = api("developer")
    batch = [event(event_id="e-1"), event(event_id="e-2"), event()]
    assert client.post(URL, batch, format="json").json() == {"created": 3, "duplicate": 0, "errors": []}

    again = client.post(URL, batch, format="json")

    assert again.status_code == 200
    assert again.json() == {"created": 1, "duplicate": 2, "errors": []}, (
        "events without event_id cannot be deduplicated"
    )
    assert ProfileEvent.objects.filter(event_id="e-1").count() == 1


def test_an_event_id_twice_in_one_batch_is_stored_once(api):
    ProfileFactory(external_id="c-1")

    response = api("developer").post(URL, [event(event_id="e-1"), event(event_id="e-1")], format="json")

    assert response.json() == {"created": 1, "duplicate": 1, "errors": []}


def test_event_ids_are_unique_per_profile_not_globally(api):
    ProfileFactory(external_id="c-1")
    ProfileFactory(external_id="c-2")

    response = api("developer").post(URL, [event("c-1", event_id="e-1"), event("c-2", event_id="e-1")], format="json")

    assert response.json()["created"] == 2


def test_unknown_external_id_refuses_the_batch_with_a_hint_to_upsert_first(api):
    ProfileFactory(external_id="c-1")
    before = db_state()

    response = api("developer").post(URL, [event("c-1"), event("ghost"), event("c-1"), event("ghost-2")], format="json")

    assert response.status_code == 422
    body = response.json()
    assert [(e["index"], e["pointer"], e["code"]) for e in body["errors"]] == [
        (1, "/events/1/external_id", "profile_not_found"),
        (3, "/events/3/external_id", "profile_not_found"),
    ]
    assert "/profiles/bulk" in body["errors"][0]["hint"]
    assert db_state() == before


def test_a_profile_of_another_environment_is_unknown_here(api, pilot):
    ProfileFactory(environment=pilot, external_id="c-1")

    response = api("developer").post(URL, [event("c-1")], format="json")

    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "profile_not_found"


def test_field_errors(api):
    ProfileFactory(external_id="c-1")
    future = (timezone.now() + timedelta(days=3)).isoformat()
    before = db_state()

    response = api("developer").post(
        URL,
        [
            event(occurred_at="yesterday"),
            event(type="cart abandoned!"),
            event(occurred_at=future),
            event(properties=[1, 2]),
            {"external_id": "c-1"},
        ],
        format="json",
    )

    assert response.status_code == 422
    assert [(e["pointer"], e["code"]) for e in response.json()["errors"]] == [
        ("/events/0/occurred_at", "invalid"),
        ("/events/1/type", "invalid"),
        ("/events/2/occurred_at", "in_future"),
        ("/events/3/properties", "not_a_dict"),
        ("/events/4/occurred_at", "required"),
        ("/events/4/type", "required"),
    ]
    assert db_state() == before


def test_one_audit_event_per_batch(api):
    ProfileFactory(external_id="c-1")
    ProfileEventFactory(profile__external_id="c-2", event_id="e-9")

    api("developer").post(URL, [event("c-1"), event("c-2", event_id="e-9")], format="json")

    audit = AuditEvent.objects.get(action="profile_event.ingest")
    assert audit.changes == {"rows": 2, "created": 1, "duplicate": 1}


def test_is_set_based(api):
    profiles = ProfileFactory.create_batch(40)
    client = api("developer")
    client.post(URL, [event(profiles[0].external_id)], format="json")

    small = queries_of(
        lambda: client.post(URL, [event(p.external_id, event_id="a") for p in profiles[:2]], format="json")
    )
    large = queries_of(lambda: client.post(URL, [event(p.external_id, event_id="b") for p in profiles], format="json"))

    assert len(small) == len(large), "\n".join(large)
    assert ProfileEvent.objects.count() == 43
