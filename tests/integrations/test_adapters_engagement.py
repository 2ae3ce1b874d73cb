"""The `engagement` adapter against a fake Braze that follows VENDORS.md."""

from __future__ import annotations

import time

import httpx
import pytest

from integrations.adapters import Checkpoint, VendorRejected
from integrations.adapters.engagement import EngagementAdapter
from integrations.destinations.breakers import Breaker
from tests.fakes.helpers import BRAZE_CREDENTIALS, braze_config

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")


def members(n: int, start: int = 0, **extra) -> list[dict]:
    return [
        {"external_id": f"u{i}", "email": f"u{i}@example.test", "first_name": "Ann", **extra}
        for i in range(start, start + n)
    ]


def adapter(fake, breaker=None, **config) -> EngagementAdapter:
    return EngagementAdapter(braze_config(fake, **config), dict(BRAZE_CREDENTIALS), breaker=breaker, label="Braze")


def test_added_members_go_to_users_track_in_batches_of_at_most_75(braze, sleeps):
    result = adapter(braze).push_members(members(200), [])

    calls = braze.calls("/users/track")
    assert [len(c.json["attributes"]) for c in calls] == [75, 75, 50]
    assert result.delivered == 200 and result.calls == 3 and result.warnings == []
    row = braze.users["u7"]
    assert row["email"] == "u7@example.test" and row["first_name"] == "Ann"
    assert braze.subscriptions["sg-1"]["u7"] == "subscribed"
    assert all(c.headers["authorization"] == "Bearer braze-rest-key-123" for c in calls)


def test_removed_members_are_unsubscribed_50_at_a_time_never_deleted(braze, sleeps):
    adapter(braze).push_members([], [f"u{i}" for i in range(120)])

    calls = braze.calls("/subscription/status/set")
    assert [len(c.json["external_id"]) for c in calls] == [50, 50, 20]
    assert {c.json["subscription_state"] for c in calls} == {"unsubscribed"}
    assert {c.json["subscription_group_id"] for c in calls} == {"sg-1"}
    assert braze.calls("/users/delete") == []
    assert braze.subscriptions["sg-1"]["u119"] == "unsubscribed"


def test_the_fake_refuses_more_than_75_attributes_as_the_contract_says(braze):
    response = httpx.post(
        braze.url + "/users/track",
        json={"attributes": [{"external_id": f"x{i}"} for i in range(76)]},
        headers={"Authorization": "Bearer braze-rest-key-123"},
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Max Input Length Exceeded"


def test_a_batch_size_above_the_vendor_limit_is_refused_by_validation():
    problems = EngagementAdapter.validate_config(
        {"base_url": "https://rest.iad-01.braze.com", "subscription_group_id": "s", "batch_size": 100}
    )
    assert [(p.pointer, p.code) for p in problems] == [("/batch_size", "out_of_range")]


def test_non_fatal_row_errors_are_warnings_and_the_other_rows_are_processed(braze, sleeps):
    rows = members(10)
    rows[3]["email"] = "not-an-email"
    rows[8]["email"] = "also-bad"

    result = adapter(braze).push_members(rows, [])

    assert result.delivered == 8
    assert [w["external_id"] for w in result.warnings] == ["u3", "u8"]
    assert all(w["code"] == "row_rejected" for w in result.warnings)
    assert "u4" in braze.users and "u3" not in braze.users


def test_429_waits_until_x_ratelimit_reset_then_succeeds(braze, sleeps):
    braze.rate_limit(times=1, reset_in=2.0)

    result = adapter(braze).push_members(members(3), [])

    assert result.delivered == 3
    assert len(braze.calls("/users/track")) == 2
    assert len(sleeps) == 1 and 0.5 <= sleeps[0] <= 3.5, sleeps
    assert "retry-after" not in {k.lower() for k in braze.calls()[0].headers}


def test_a_used_up_budget_waits_for_the_reset_before_the_next_call(braze, sleeps):
    braze.remaining = 1  # the first call leaves 0

    adapter(braze).push_members(members(150), [])

    assert len(braze.calls("/users/track")) == 2
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 3.5


def test_a_long_rate_limit_defers_instead_of_holding_the_worker(braze, sleeps):
    from integrations.adapters import RateLimited

    braze.rate_limit(times=1, reset_in=600)

    with pytest.raises(RateLimited) as caught:
        adapter(braze).push_members(members(3), [])

    assert caught.value.retry_after > 500
    assert sleeps == []


def test_triggered_sends_go_50_recipients_at_a_time(braze, sleeps):
    batch = {
        "properties": {"campaign": "winter"},
        "recipients": [{"external_id": f"u{i}", "properties": {"coupon": f"C{i}"}} for i in range(120)],
    }

    result = adapter(braze).send(batch)

    calls = braze.calls("/campaigns/trigger/send")
    assert [len(c.json["recipients"]) for c in calls] == [50, 50, 20]
    assert calls[0].json["campaign_id"] == "c-123"
    assert calls[0].json["recipients"][1] == {"external_user_id": "u1", "trigger_properties": {"coupon": "C1"}}
    assert result.delivered == 120 and len(result.details["dispatch_ids"]) == 3


def test_a_vendor_4xx_fails_without_tripping_the_breaker(braze, sleeps):
    breaker = Breaker("test:engagement-4xx")
    bad = EngagementAdapter(braze_config(braze, campaign_id="c-unknown"), dict(BRAZE_CREDENTIALS), breaker=breaker)

    for _ in range(7):
        with pytest.raises(VendorRejected) as caught:
            bad.send({"recipients": [{"external_id": "u1"}]})
        assert caught.value.status == 400
    assert "Invalid Campaign ID" in caught.value.message
    snapshot = breaker.snapshot()
    assert snapshot.state == "closed" and snapshot.failures == 0


def test_a_wrong_key_is_refused_and_the_key_is_never_in_the_error(braze, sleeps):
    wrong = EngagementAdapter(braze_config(braze), {"api_key": "sk-WRONG-KEY-999"}, label="Braze")

    with pytest.raises(VendorRejected) as caught:
        wrong.push_members(members(1), [])

    assert caught.value.status == 401
    assert "sk-WRONG-KEY-999" not in caught.value.message + caught.value.hint
    assert "credentials" in caught.value.hint


def test_maintenance_202_queued_counts_as_accepted(braze, sleeps):
    braze.maintenance = True
    result = adapter(braze).push_members(members(5), [])
    assert result.delivered == 5


def test_checkpoint_resumes_after_the_last_delivered_batch(braze, sleeps):
    done: list[dict] = []
    checkpoint = Checkpoint({"added": 150}, on_advance=done.append)

    adapter(braze).push_members(members(200), [], checkpoint)

    calls = braze.calls("/users/track")
    assert [c.json["attributes"][0]["external_id"] for c in calls] == ["u150"]
    assert done[-1] == {"added": 200}


def test_health_passes_with_the_right_key_and_fails_with_a_wrong_one(braze, sleeps):
    assert adapter(braze).health().ok is True
    wrong = EngagementAdapter(braze_config(braze), {"api_key": "nope-nope"}, label="Braze").health()
    assert wrong.ok is False and "401" in wrong.message


def test_every_call_has_explicit_timeouts(braze, sleeps, monkeypatch):
    seen = []
    original = httpx.Client.request

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("timeout"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "request", spy)
    adapter(braze, connect_timeout=1.5, read_timeout=4).push_members(members(80), ["u1"])

    assert len(seen) == 3
    assert all(t.connect == 1.5 and t.read == 4 for t in seen)


def test_reset_header_in_the_past_still_pauses_briefly(braze, sleeps):
    braze.rate_limit(times=1, reset_in=-10)
    started = time.time()
    adapter(braze).push_members(members(1), [])
    assert sleeps == [0.5] and time.time() - started < 5
