"""The `crm` adapter against a fake Salesforce Marketing Cloud that follows VENDORS.md."""

from __future__ import annotations

import dataclasses
import time

import pytest

from integrations.adapters import DeliveryResult, RateLimited, VendorRejected, crm
from integrations.adapters.crm import CrmAdapter
from integrations.destinations.breakers import Breaker
from tests.fakes.helpers import SFMC_CREDENTIALS, sfmc_config

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")


def members(n: int, start: int = 0) -> list[dict]:
    return [
        {"external_id": f"s{i}", "email": f"s{i}@example.test", "first_name": "Bo", "attributes": {"Tier": "gold"}}
        for i in range(start, start + n)
    ]


def adapter(fake, breaker=None, credentials=None, **config) -> CrmAdapter:
    return CrmAdapter(sfmc_config(fake, **config), credentials or dict(SFMC_CREDENTIALS), breaker=breaker, label="SFMC")


def test_small_batches_are_rowset_upserts_of_at_most_50_rows(sfmc, sleeps):
    result = adapter(sfmc).push_members(members(120), [])

    calls = sfmc.calls("/hub/v1/dataevents/key:DE-AUD/rowset")
    assert [len(c.json) for c in calls] == [50, 50, 20]
    assert calls[0].json[0] == {
        "keys": {"SubscriberKey": "s0"},
        "values": {"Tier": "gold", "Email": "s0@example.test", "FirstName": "Bo", "InAudience": True},
    }
    assert result.delivered == 120
    assert sfmc.rows["DE-AUD"]["s5"]["InAudience"] is True


def test_removal_is_an_upsert_setting_the_membership_column_false(sfmc, sleeps):
    adapter(sfmc).push_members(members(3), [])
    adapter(sfmc).push_members([], ["s1", {"external_id": "s2"}])

    assert sfmc.rows["DE-AUD"]["s1"]["InAudience"] is False
    assert sfmc.rows["DE-AUD"]["s2"]["InAudience"] is False
    assert sfmc.rows["DE-AUD"]["s0"]["InAudience"] is True
    assert not [r for r in sfmc.requests if r.method == "DELETE"]


def test_the_membership_column_and_field_map_are_configurable(sfmc, sleeps):
    adapter(sfmc, membership_column="Active", field_map={"email": "EmailAddress"}).push_members(members(1), ["s9"])
    assert sfmc.rows["DE-AUD"]["s0"]["EmailAddress"] == "s0@example.test"
    assert sfmc.rows["DE-AUD"]["s0"]["Active"] is True
    assert sfmc.rows["DE-AUD"]["s9"] == {"SubscriberKey": "s9", "Active": False}


def test_the_token_is_cached_until_it_expires(sfmc, sleeps):
    adapter(sfmc).push_members(members(2), [])
    adapter(sfmc).push_members(members(2, start=2), [])
    assert sfmc.tokens_issued == 1
    assert sfmc.calls("/v2/token")[0].json == {
        "grant_type": "client_credentials",
        "client_id": "sfmc-client-id",
        "client_secret": "sfmc-client-secret-xyz",
    }


def test_a_token_past_its_expiry_is_refetched(sfmc, sleeps):
    adapter(sfmc).push_members(members(1), [])
    (key, token), *_ = crm._TOKENS.items()
    assert token.expires_at == pytest.approx(time.time() + 1079 - crm.TOKEN_MARGIN, abs=5)
    crm._TOKENS[key] = dataclasses.replace(token, expires_at=time.time() - 1)

    adapter(sfmc).push_members(members(1), [])

    assert sfmc.tokens_issued == 2


def test_401_not_authorized_fetches_a_new_token_once_and_retries(sfmc, sleeps):
    adapter(sfmc).push_members(members(1), [])
    sfmc.expire_tokens()

    result = adapter(sfmc).push_members(members(1, start=1), [])

    assert result.delivered == 1
    assert sfmc.tokens_issued == 2
    statuses = [r.path for r in sfmc.requests]
    assert statuses.count("/v2/token") == 2


def test_a_token_refused_again_is_not_retried_for_ever(sfmc, sleeps, monkeypatch):
    a = adapter(sfmc)
    a.push_members(members(1), [])
    # Every token the fake issues from now on is stale at once.
    original = sfmc._token

    def stale_token(body):
        answer = original(body)
        sfmc.expire_tokens()
        return answer

    monkeypatch.setattr(sfmc, "_token", stale_token)
    sfmc.expire_tokens()
    with pytest.raises(VendorRejected) as caught:
        a.push_members(members(1), [])
    assert caught.value.status == 401
    assert len(sfmc.calls("/v2/token")) == 2  # the first token, and one refetch


def test_bad_client_credentials_fail_without_tripping_the_breaker(sfmc, sleeps):
    breaker = Breaker("test:crm-bad-credentials")
    wrong = adapter(sfmc, breaker=breaker, credentials={"client_id": "sfmc-client-id", "client_secret": "WRONG-SECRET"})

    with pytest.raises(VendorRejected) as caught:
        wrong.push_members(members(1), [])

    assert caught.value.status == 401
    assert "WRONG-SECRET" not in caught.value.message + caught.value.hint
    assert "client id/secret" in caught.value.hint
    assert breaker.snapshot().failures == 0


def test_large_batches_go_async_at_most_32000_items_and_are_polled(sfmc, sleeps):
    sfmc.pending_polls = 2
    result = adapter(sfmc, async_threshold=1000).push_members(members(33_000), [])

    puts = sfmc.calls("/data/v1/async/dataextensions/key:DE-AUD/rows", method="PUT")
    assert [len(c.json["items"]) for c in puts] == [32_000, 1_000]
    assert puts[0].json["items"][0]["SubscriberKey"] == "s0"
    polls = [r for r in sfmc.requests if r.path.endswith("/status")]
    assert len(polls) == 6  # two Pending and one Complete per request
    assert result.delivered == 33_000
    assert len(sfmc.rows["DE-AUD"]) == 33_000
    assert sfmc.calls("/hub/") == []


def test_async_row_errors_are_warnings(sfmc, sleeps):
    sfmc.bad_keys = {"s3", "s7"}

    result = adapter(sfmc, async_threshold=5).push_members(members(10), [])

    assert result.delivered == 8
    assert sorted(w["external_id"] for w in result.warnings) == ["s3", "s7"]
    assert "Invalid email" in result.warnings[0]["message"]


def test_an_unknown_async_request_is_a_warning(sfmc, sleeps):
    result = DeliveryResult()
    adapter(sfmc)._await_async("no-such-request", result)
    assert result.warnings[0]["code"] == "async_status_unknown"
    assert "AsyncRequestStatusNotFound" in result.warnings[0]["message"]


def test_429_with_retry_after_5_waits_5_seconds_then_succeeds(sfmc, sleeps):
    a = adapter(sfmc)
    a.token()
    sfmc.throttle("retry_after")

    result = a.push_members(members(1), [])

    assert result.delivered == 1
    assert sleeps == [5.0]


def test_50200_without_retry_after_backs_off_exponentially(sfmc, sleeps):
    a = adapter(sfmc)
    a.token()
    sfmc.throttle("blocked", times=3)

    a.push_members(members(1), [])

    assert sleeps == [1.0, 2.0, 4.0]


def test_50200_that_does_not_end_defers_the_push(sfmc, sleeps):
    a = adapter(sfmc)
    a.token()
    sfmc.throttle("blocked", times=10)

    with pytest.raises(RateLimited) as caught:
        a.push_members(members(1), [])

    assert caught.value.retry_after >= 60
    assert sleeps == [1.0, 2.0, 4.0, 8.0]


def test_a_400_fails_the_whole_call_with_the_vendors_message(sfmc, sleeps):
    breaker = Breaker("test:crm-400")
    rows = members(3)
    rows[1]["email"] = "BAD"

    with pytest.raises(VendorRejected) as caught:
        adapter(sfmc, breaker=breaker).push_members(rows, [])

    assert caught.value.status == 400
    assert "errorcode 10000" in caught.value.message and "not valid" in caught.value.message
    assert breaker.snapshot().failures == 0


def test_triggered_sends_are_one_recipient_per_call_with_per_recipient_errors(sfmc, sleeps):
    batch = {
        "properties": {"campaign": "w"},
        "recipients": [
            {"external_id": "s1", "email": "s1@example.test", "properties": {"coupon": "A"}},
            {"external_id": "s2", "email": "broken"},
            {"external_id": "s3", "email": "s3@example.test"},
        ],
    }

    result = adapter(sfmc, definition_key="welcome").send(batch)

    calls = sfmc.calls("/messaging/v1/messageDefinitionSends/key:welcome/send")
    assert len(calls) == 3
    assert calls[0].json["To"] == {
        "Address": "s1@example.test",
        "SubscriberKey": "s1",
        "ContactAttributes": {"SubscriberAttributes": {"campaign": "w", "coupon": "A"}},
    }
    assert result.delivered == 2
    assert result.warnings[0]["external_id"] == "s2"


def test_config_needs_exactly_one_of_subdomain_and_auth_url():
    both = CrmAdapter.validate_config(
        {"subdomain": "abc123", "auth_url": "https://x.example", "data_extension_key": "K"}
    )
    neither = CrmAdapter.validate_config({"data_extension_key": "K"})
    bad = CrmAdapter.validate_config(
        {"subdomain": "Not A Subdomain!", "data_extension_key": "K", "sync_batch_size": 51}
    )
    assert [p.code for p in both] == ["subdomain_or_auth_url"]
    assert [p.code for p in neither] == ["subdomain_or_auth_url"]
    assert [(p.pointer, p.code) for p in bad] == [("/sync_batch_size", "out_of_range")]
    assert [p.code for p in CrmAdapter.validate_config({"subdomain": "Not A Sub!", "data_extension_key": "K"})] == [
        "invalid_subdomain"
    ]


def test_health_fetches_a_fresh_token_and_calls_the_rest_host(sfmc, sleeps):
    health = adapter(sfmc).health()
    assert health.ok, health.message
    assert [c["name"] for c in health.checks] == ["credentials", "rest"]

    failed = adapter(sfmc, credentials={"client_id": "x", "client_secret": "SECRET-VALUE-1"}).health()
    assert failed.ok is False and "SECRET-VALUE-1" not in failed.message
