"""GET /api/v1/events/: the timeline of domain events of the token's environment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.models import OutboxEvent
from tests.refusals import refused

URL = "/api/v1/events/"


def make_event(environment, type="consent.updated", occurred_at=None, **data):
    return OutboxEvent.objects.create(
        environment=environment,
        type=type,
        aggregate_type="audiences.profile",
        aggregate_id="1",
        occurred_at=occurred_at or timezone.now(),
        data=data or {"external_id": "c-1"},
    )


def test_lists_the_environments_events_newest_first_as_public_events(api, sandbox, pilot):
    older = make_event(sandbox, "profiles.ingested", created=1)
    newer = make_event(sandbox, "consent.updated", external_id="c-1")
    make_event(pilot, "consent.updated")

    response = api("analyst").get(URL)

    assert response.status_code == 200
    results = response.json()["results"]
    assert results == [newer.as_public(), older.as_public()]
    assert results[0]["id"].startswith("evt_")
    assert set(results[0]) == {"id", "type", "occurred_at", "environment", "data"}
    assert results[0]["environment"] == "sandbox"


def test_filter_by_type_one_or_several(api, sandbox):
    make_event(sandbox, "consent.updated")
    make_event(sandbox, "profiles.ingested")
    make_event(sandbox, "audience.published")
    client = api("developer")

    one = client.get(URL, {"type": "consent.updated"}).json()["results"]
    two = client.get(URL, {"type": "consent.updated,audience.published"}).json()["results"]

    assert [e["type"] for e in one] == ["consent.updated"]
    assert sorted(e["type"] for e in two) == ["audience.published", "consent.updated"]


def test_filter_since(api, sandbox):
    now = timezone.now()
    make_event(sandbox, occurred_at=now - timedelta(days=2), external_id="old")
    make_event(sandbox, occurred_at=now, external_id="new")

    since = (now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    results = api("developer").get(URL, {"since": since}).json()["results"]

    assert [e["data"]["external_id"] for e in results] == ["new"]


def test_unknown_parameter_and_bad_since_are_400(api):
    client = api("developer")

    assert client.get(URL, {"typ": "x"}).json()["code"] == "unknown_query_parameter"
    assert client.get(URL, {"since": "yesterday"}).status_code == 400


def test_consent_sync_shows_up_in_the_timeline(api, sandbox):
    from tests.factories import ProfileFactory

    ProfileFactory(external_id="c-1")
    client = api("developer")
    client.post(
        "/api/v1/consent/sync",
        [
            {
                "external_id": "c-1",
                "channel": "email",
                "status": "denied",
                "source": "t",
                "captured_at": "2026-01-01T00:00:00Z",
            }
        ],
        format="json",
    )

    [event] = client.get(URL, {"type": "consent.updated"}).json()["results"]

    assert event["data"]["external_id"] == "c-1"
    assert event["data"]["changes"][0]["status"] == "denied"


def test_requires_a_token(db):
    from rest_framework.test import APIClient

    response = APIClient().get(URL)

    refused(response, 401, "not_authenticated")


def test_a_user_without_a_role_is_403(api):
    refused(api("nobody").get(URL), 403, "permission_denied")


@pytest.mark.parametrize("page", [2, 40])
def test_queries_do_not_grow_with_the_page(api, sandbox, page, django_assert_num_queries):
    for i in range(40):
        make_event(sandbox, external_id=f"c-{i}")
    client = api("developer")
    client.get(URL)  # the token's last_used_at is written on first use
    with CaptureQueriesContext(connection) as baseline:
        client.get(URL, {"limit": 1})

    # token, 2× permissions, roles, events (environment joined)
    assert len(baseline.captured_queries) <= 5
    with django_assert_num_queries(len(baseline.captured_queries)):
        response = client.get(URL, {"limit": page})

    assert len(response.json()["results"]) == page
