"""POST /api/v1/consent/sync: newest captured_at wins, stale updates are counted, the
ledger and the consent.updated domain events follow every applied change."""

from __future__ import annotations

from datetime import datetime

import pytest

from audiences.models import Consent, ConsentChange
from governance.models import AuditEvent, OutboxEvent
from tests.audiences.helpers import db_state, queries_of
from tests.factories import ConsentFactory, ProfileFactory

URL = "/api/v1/consent/sync"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def update(external_id="c-1", channel="email", status="granted", captured_at="2026-03-01T10:00:00Z", source="form"):
    return {
        "external_id": external_id,
        "channel": channel,
        "status": status,
        "source": source,
        "captured_at": captured_at,
    }


@pytest.fixture
def profile(db):
    return ProfileFactory(external_id="c-1")


def test_applies_updates_writes_the_ledger_and_one_event_per_profile(api, profile, sandbox):
    ConsentFactory(profile=profile, channel="email", status="granted", captured_at=at("2026-02-01T00:00:00Z"))
    other = ProfileFactory(external_id="c-2")

    response = api("developer").post(
        URL,
        {
            "updates": [
                update(channel="email", status="denied", source="preference_center"),
                update(channel="sms", status="granted"),
                update("c-2", channel="push", status="unknown"),
            ]
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json() == {"updated": 3, "unchanged": 0, "stale": 0, "removed_from_audiences": 0, "errors": []}
    email = Consent.objects.get(profile=profile, channel="email")
    assert (email.status, email.source, email.captured_at) == (
        "denied",
        "preference_center",
        at("2026-03-01T10:00:00Z"),
    )
    assert Consent.objects.get(profile=other, channel="push").status == "unknown"

    ledger = {(c.profile_id, c.channel): c for c in ConsentChange.objects.all()}
    assert len(ledger) == 3
    assert (ledger[profile.pk, "email"].previous_status, ledger[profile.pk, "email"].status) == ("granted", "denied")
    assert ledger[profile.pk, "sms"].previous_status is None
    assert ledger[profile.pk, "email"].request_id == response["X-Request-ID"]

    events = {e.aggregate_id: e for e in OutboxEvent.objects.filter(type="consent.updated")}
    assert set(events) == {str(profile.pk), str(other.pk)}
    mine = events[str(profile.pk)]
    assert mine.environment == sandbox
    assert mine.data == {
        "external_id": "c-1",
        "changes": [
            {
                "channel": "email",
                "status": "denied",
                "previous_status": "granted",
                "captured_at": "2026-03-01T10:00:00Z",
                "source": "preference_center",
            },
            {
                "channel": "sms",
                "status": "granted",
                "previous_status": None,
                "captured_at": "2026-03-01T10:00:00Z",
                "source": "form",
            },
        ],
    }


def test_an_update_older_than_the_stored_one_is_stale_and_ignored(api, profile):
    ConsentFactory(profile=profile, channel="email", status="denied", captured_at=at("2026-03-01T10:00:00Z"))
    before = db_state()

    response = api("developer").post(URL, [update(status="granted", captured_at="2026-02-28T10:00:00Z")], format="json")

    assert response.json() == {"updated": 0, "unchanged": 0, "stale": 1, "removed_from_audiences": 0, "errors": []}
    after = db_state()
    assert after.pop("audit") == before.pop("audit") + 1, "the sync itself is audited"
    assert after == before


def test_same_captured_at_and_status_is_unchanged(api, profile):
    ConsentFactory(profile=profile, channel="email", status="granted", captured_at=at("2026-03-01T10:00:00Z"))

    response = api("developer").post(URL, [update(status="granted")], format="json")

    assert response.json() == {"updated": 0, "unchanged": 1, "stale": 0, "removed_from_audiences": 0, "errors": []}
    assert not ConsentChange.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_sending_the_same_batch_twice_changes_nothing_the_second_time(api, profile):
    ProfileFactory(external_id="c-2")
    client = api("developer")
    batch = {
        "updates": [
            update(channel="email", status="granted", captured_at="2026-03-01T10:00:00Z"),
            update(channel="email", status="denied", captured_at="2026-03-02T10:00:00Z"),
            update("c-2", channel="ads", status="denied"),
        ]
    }
    first = client.post(URL, batch, format="json")
    assert first.json() == {"updated": 2, "unchanged": 0, "stale": 1, "removed_from_audiences": 0, "errors": []}
    before = db_state()

    second = client.post(URL, batch, format="json")

    assert second.status_code == 200
    assert second.json() == {"updated": 0, "unchanged": 2, "stale": 1, "removed_from_audiences": 0, "errors": []}
    after = db_state()
    assert after.pop("audit") == before.pop("audit") + 1
    assert after == before, "no consent, ledger or outbox change the second time"


def test_within_one_batch_the_newest_wins_and_the_others_are_stale(api, profile):
    response = api("developer").post(
        URL,
        [
            update(status="granted", captured_at="2026-03-02T10:00:00Z"),
            update(status="denied", captured_at="2026-03-03T10:00:00Z"),
            update(status="unknown", captured_at="2026-03-01T10:00:00Z"),
        ],
        format="json",
    )

    assert response.json() == {"updated": 1, "unchanged": 0, "stale": 2, "removed_from_audiences": 0, "errors": []}
    assert Consent.objects.get(profile=profile, channel="email").status == "denied"
    assert ConsentChange.objects.count() == 1


def test_on_equal_captured_at_in_one_batch_the_later_row_wins(api, profile):
    response = api("developer").post(URL, [update(status="granted"), update(status="denied")], format="json")

    assert response.json() == {"updated": 1, "unchanged": 0, "stale": 1, "removed_from_audiences": 0, "errors": []}
    assert Consent.objects.get(profile=profile, channel="email").status == "denied"


def test_a_newer_confirmation_of_the_same_status_renews_captured_at(api, profile):
    ConsentFactory(profile=profile, channel="email", status="granted", captured_at=at("2026-03-01T10:00:00Z"))
    client = api("developer")

    renewed = client.post(URL, [update(status="granted", captured_at="2026-03-05T10:00:00Z")], format="json")
    older = client.post(URL, [update(status="denied", captured_at="2026-03-03T10:00:00Z")], format="json")

    assert renewed.json()["updated"] == 1
    assert older.json()["stale"] == 1, "judged against the renewed captured_at"
    consent = Consent.objects.get(profile=profile, channel="email")
    assert (consent.status, consent.captured_at) == ("granted", at("2026-03-05T10:00:00Z"))


def test_captured_at_with_an_offset_compares_as_the_same_instant(api, profile):
    ConsentFactory(profile=profile, channel="email", status="granted", captured_at=at("2026-03-01T10:00:00Z"))

    response = api("developer").post(URL, [update(captured_at="2026-03-01T12:00:00+02:00")], format="json")

    assert response.json()["unchanged"] == 1


def test_unknown_profiles_refuse_the_batch(api, profile):
    before = db_state()

    response = api("developer").post(URL, [update(), update("ghost")], format="json")

    assert response.status_code == 422
    assert response.json()["errors"][0] | {"message": ""} == {
        "index": 1,
        "pointer": "/updates/1/external_id",
        "code": "profile_not_found",
        "message": "",
        "hint": "Upsert the profile first with POST /api/v1/profiles/bulk, then send this row again.",
    }
    assert db_state() == before


def test_a_captured_at_in_the_future_is_refused(api, profile):
    response = api("developer").post(URL, [update(captured_at="2099-01-01T00:00:00Z")], format="json")

    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "in_future"


def test_one_audit_event_with_counts(api, profile):
    ConsentFactory(profile=profile, channel="email", status="granted", captured_at=at("2026-03-09T10:00:00Z"))
    client = api("developer")

    client.post(URL, [update(), update(channel="sms")], format="json")

    audit = AuditEvent.objects.get(action="consent.sync")
    assert audit.changes == {
        "rows": 2,
        "updated": 1,
        "unchanged": 0,
        "stale": 1,
        "removed_from_audiences": 0,
        "profiles_changed": 1,
    }
    assert audit.actor_user == client.user


def test_is_set_based_the_same_queries_for_2_or_80_updates(api):
    profiles = ProfileFactory.create_batch(20)
    client = api("developer")
    client.post(URL, [update(profiles[0].external_id, channel="ads")], format="json")

    def batch(channels):
        return [update(p.external_id, channel=c, status="denied") for p in profiles for c in channels]

    small = queries_of(lambda: client.post(URL, batch(["email"])[:2], format="json"))
    large = queries_of(lambda: client.post(URL, batch(["sms", "push", "email", "ads"]), format="json"))

    assert len(small) == len(large), "\n".join(large)
    assert ConsentChange.objects.count() == 1 + 80
