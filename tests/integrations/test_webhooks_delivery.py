"""Sending webhooks to local receivers: signing, retries with backoff and Retry-After,
timeouts, the delivery log, dead letters after the last attempt, pausing after a day of
failures, resuming, and order per aggregate."""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
from django.utils import timezone

from integrations.models import DeadLetter, DeliveryState, SubscriptionState, WebhookDelivery
from integrations.outbox import relay
from integrations.webhooks import delivery as webhook_delivery
from integrations.webhooks import sending, signing
from integrations.webhooks import services as webhooks
from tests.factories import WebhookSubscriptionFactory
from tests.reliability import fixtures
from tests.reliability.fixtures import SECRET, emit
from tests.reliability.receivers import Answer, Hang, closed_port_url

# Shared fixtures (tests/reliability/fixtures.py), bound here so pytest finds them.
no_kicks = fixtures.no_kicks
receiver = fixtures.receiver


def deliver(now):
    return webhook_delivery.deliver_webhooks(now=now)


def test_a_delivery_is_signed_and_carries_the_public_event(sandbox, receiver, no_kicks):
    hook = receiver(Answer(200))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    event = emit(sandbox, data={"external_id": "cust-1", "changes": []})
    relay.relay_outbox()
    now = timezone.now()

    outcome = deliver(now)

    assert outcome.succeeded == 1
    [got] = hook.received
    assert got.event == event.as_public()
    assert got.headers["marketerapi-event-id"] == event.public_id and event.public_id.startswith("evt_")
    assert got.headers["marketerapi-event-type"] == "consent.updated"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["marketerapi-delivery-attempt"] == "1"
    header = got.headers["marketerapi-signature"]
    t, _ = (part.split("=", 1)[1] for part in header.split(","))
    assert int(t) == int(now.timestamp())
    assert signing.verify_signature(header, got.body, SECRET, now=now.timestamp())
    assert not signing.verify_signature(header, got.body, "whsec_another-secret-0123456789", now=now.timestamp())
    assert not signing.verify_signature(header, got.body + b" ", SECRET, now=now.timestamp())
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.SUCCEEDED and delivery.attempts == 1 and delivery.delivered_at == now
    [attempt] = delivery.log.all()
    assert (attempt.attempt, attempt.status_code, attempt.error) == (1, 200, "")
    assert attempt.latency_ms is not None


def test_a_500_is_retried_with_backoff_and_logged(sandbox, receiver, no_kicks):
    hook = receiver(Answer(500, body=b"boom"), default=Answer(200))
    sub = WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()
    now = timezone.now()

    first = deliver(now)

    assert first.failed == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 1
    # full jitter under the first cap (1 minute), never under 1 second
    assert now + timedelta(seconds=1) <= delivery.next_attempt_at <= now + timedelta(seconds=60)
    assert delivery.last_status_code == 500 and delivery.last_error == "HTTP 500: boom"
    sub.refresh_from_db()
    assert sub.failing_since == now

    # not due yet: nothing is sent
    assert deliver(now + timedelta(milliseconds=500)).claimed == 0
    assert len(hook.received) == 1

    # when due, attempt 2 goes through and clears the failure clock
    later = delivery.next_attempt_at
    assert deliver(later).succeeded == 1
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCEEDED and delivery.attempts == 2
    assert [(a.attempt, a.status_code) for a in delivery.log.all()] == [(1, 500), (2, 200)]
    assert [r.headers["marketerapi-delivery-attempt"] for r in hook.received] == ["1", "2"]
    assert len(set(hook.event_ids())) == 1
    sub.refresh_from_db()
    assert sub.failing_since is None


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_honoured(sandbox, receiver, no_kicks, status):
    hook = receiver(Answer(status, headers={"Retry-After": "120"}))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()
    now = timezone.now()

    deliver(now)

    delivery = WebhookDelivery.objects.get()
    assert now + timedelta(seconds=120) <= delivery.next_attempt_at <= now + timedelta(seconds=121)
    assert delivery.last_status_code == status
    assert deliver(now + timedelta(seconds=119)).claimed == 0


def test_retry_after_as_an_http_date_is_honoured(sandbox, receiver, no_kicks):
    now = timezone.now().replace(microsecond=0) + timedelta(seconds=1)
    when = now + timedelta(minutes=30)
    hook = receiver(Answer(503, headers={"Retry-After": format_datetime(when, usegmt=True)}))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()

    deliver(now)

    delivery = WebhookDelivery.objects.get()
    assert when <= delivery.next_attempt_at <= when + timedelta(seconds=1)


def test_backoff_caps_grow_and_retry_after_is_capped():
    import random

    rng = random.Random(7)
    for attempt in range(1, webhook_delivery.MAX_ATTEMPTS):
        cap = min(
            webhook_delivery.BACKOFF_BASE * webhook_delivery.BACKOFF_FACTOR ** (attempt - 1),
            webhook_delivery.BACKOFF_MAX_GAP,
        )
        waits = [webhook_delivery.retry_delay(attempt, rng=rng).total_seconds() for _ in range(200)]
        assert all(webhook_delivery.MIN_GAP <= w <= cap for w in waits)
        assert max(waits) > cap * 0.8  # full jitter spreads over the whole range
        assert min(waits) < cap * 0.2
    assert webhook_delivery.retry_delay(1, retry_after=10**9).total_seconds() == webhook_delivery.BACKOFF_MAX_GAP
    caps = [min(60 * 5 ** (n - 1), 16 * 3600) for n in range(1, webhook_delivery.MAX_ATTEMPTS)]
    assert 20 * 3600 < sum(caps) / 2 < 26 * 3600  # about a day on average


def test_parse_retry_after():
    now = timezone.now().replace(microsecond=0)
    assert sending.parse_retry_after("7", now) == 7
    assert sending.parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert sending.parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0
    assert sending.parse_retry_after("soon", now) is None
    assert sending.parse_retry_after(None, now) is None


def test_a_receiver_that_hangs_past_the_read_timeout_fails_the_attempt(sandbox, receiver, no_kicks, settings):
    settings.WEBHOOK_READ_TIMEOUT = 0.5
    hook = receiver(Hang(2.0))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()

    deliver(timezone.now())

    delivery = WebhookDelivery.objects.get()
    [attempt] = delivery.log.all()
    assert attempt.status_code is None
    assert attempt.error == "Read timeout: no answer within 0.5 s."
    assert 450 <= attempt.latency_ms < 1900
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 1


def test_a_slow_answer_within_the_timeout_succeeds_and_its_latency_is_logged(sandbox, receiver, no_kicks, settings):
    settings.WEBHOOK_READ_TIMEOUT = 2.0
    hook = receiver(Answer(204, body=b"", delay=0.3))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()

    assert deliver(timezone.now()).succeeded == 1

    delivery = WebhookDelivery.objects.get()
    assert delivery.last_status_code == 204 and delivery.last_latency_ms >= 300


def test_connection_refused_is_logged(sandbox, no_kicks):
    WebhookSubscriptionFactory(environment=sandbox, url=closed_port_url())
    emit(sandbox)
    relay.relay_outbox()

    deliver(timezone.now())

    [attempt] = WebhookDelivery.objects.get().log.all()
    assert attempt.error.startswith("Connection failed") and attempt.status_code is None


def test_redirects_are_not_followed(sandbox, receiver, no_kicks):
    hook = receiver(Answer(301, headers={"Location": "https://new.example.com/hook"}))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()

    deliver(timezone.now())

    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING
    assert "redirects are not followed" in delivery.last_error and "new.example.com" in delivery.last_error


def _run_all_attempts(now, hook_count_check=None):
    """Deliver at each next_attempt_at until the delivery is no longer pending."""
    for _ in range(webhook_delivery.MAX_ATTEMPTS + 2):
        delivery = WebhookDelivery.objects.get()
        if delivery.state != DeliveryState.PENDING:
            return delivery, now
        now = max(now, delivery.next_attempt_at)
        deliver(now)
    return WebhookDelivery.objects.get(), now


def test_after_the_last_attempt_the_delivery_is_dead_lettered_with_its_last_error(
    sandbox, receiver, no_kicks, monkeypatch
):
    # A quarter of each cap: the eight attempts span about 11 hours. (With random jitter
    # they spanned more than a day about one run in ten, and the subscription was paused
    # before its last attempt — the next test's subject, not this one's.)
    monkeypatch.setattr(webhook_delivery, "random", SimpleNamespace(uniform=lambda low, high: high / 4))
    hook = receiver(default=Answer(500, body=b"still broken"))
    sub = WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    event = emit(sandbox)
    relay.relay_outbox()
    start = timezone.now()

    delivery, end = _run_all_attempts(start)

    assert delivery.state == DeliveryState.DEAD and delivery.attempts == webhook_delivery.MAX_ATTEMPTS
    assert len(hook.received) == webhook_delivery.MAX_ATTEMPTS
    assert [a.attempt for a in delivery.log.all()] == list(range(1, webhook_delivery.MAX_ATTEMPTS + 1))
    letter = DeadLetter.objects.get()
    assert letter.kind == "webhook_delivery" and letter.environment_id == sandbox.pk
    assert letter.reference_id == str(delivery.pk) and letter.attempts == webhook_delivery.MAX_ATTEMPTS
    assert letter.last_error == "HTTP 500: still broken"
    assert letter.payload["event_id"] == event.public_id and letter.payload["subscription_id"] == sub.pk
    # the waits add up to hours, not seconds
    assert end - start > timedelta(minutes=10)


def test_a_subscription_failing_for_a_day_is_paused_and_resuming_sends_what_it_held(
    sandbox, receiver, no_kicks, actor, django_capture_on_commit_callbacks
):
    hook = receiver(default=Answer(503, body=b"down"))
    sub = WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()
    t0 = timezone.now()

    # first failure starts the clock
    deliver(t0)
    sub.refresh_from_db()
    assert sub.failing_since == t0 and sub.state == SubscriptionState.ACTIVE

    # 23 hours of failures do not pause it
    WebhookDelivery.objects.update(next_attempt_at=t0 + timedelta(hours=23))
    deliver(t0 + timedelta(hours=23))
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE

    # a failure 25 hours after the first does
    WebhookDelivery.objects.update(next_attempt_at=t0 + timedelta(hours=25))
    outcome = deliver(t0 + timedelta(hours=25))
    sub.refresh_from_db()
    assert outcome.paused == [sub.pk]
    assert sub.state == SubscriptionState.PAUSED
    assert "every delivery attempt has failed for 25 h" in sub.paused_reason and "HTTP 503: down" in sub.paused_reason
    from governance.models import AuditEvent

    audit = AuditEvent.objects.filter(action="webhook.update", target_id=str(sub.pk)).latest("id")
    assert audit.actor_label == "system (task)" and audit.changes["after"]["state"] == "paused"

    # paused: its delivery is held, and new events are not fanned out to it
    sent = len(hook.received)
    deliver(t0 + timedelta(days=3))
    assert len(hook.received) == sent
    emit(sandbox, aggregate=("audiences.profile", 99))
    assert relay.relay_outbox().deliveries == 0
    assert WebhookDelivery.objects.get().state == DeliveryState.PENDING

    # resumed once the receiver is fixed: the held delivery is due at once and goes through
    hook.default = Answer(200)
    resumed_at = t0 + timedelta(days=3)
    with django_capture_on_commit_callbacks():
        change = webhooks.webhook_update(
            actor=actor("developer"), subscription=sub, state=SubscriptionState.ACTIVE, now=resumed_at
        )
    assert change.subscription.failing_since is None and change.subscription.paused_reason == ""
    assert deliver(resumed_at).succeeded == 1
    assert WebhookDelivery.objects.get().state == DeliveryState.SUCCEEDED


def test_deliveries_for_one_aggregate_wait_for_the_earlier_one(sandbox, receiver, no_kicks):
    failed_once: list[int] = []

    def first_attempt_of_n1_fails(got):
        if got.event["data"]["n"] == 1 and not failed_once:
            failed_once.append(1)
            return Answer(500)
        return None

    hook = receiver(default=Answer(200), rule=first_attempt_of_n1_fails)
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    first = emit(sandbox, aggregate=("audiences.profile", 1), data={"n": 1})
    second = emit(sandbox, aggregate=("audiences.profile", 1), data={"n": 2})
    other = emit(sandbox, aggregate=("audiences.profile", 2), data={"n": 3})
    relay.relay_outbox()
    now = timezone.now()

    # the first fails; the second (same profile) waits; the other profile's goes
    deliver(now)
    assert sorted(r.event["data"]["n"] for r in hook.received) == [1, 3]
    assert WebhookDelivery.objects.get(event=second).attempts == 0

    # still waiting while the first is pending, even when the second is due
    assert deliver(now + timedelta(milliseconds=1)).claimed == 0

    # once the first is delivered, the second follows
    due = WebhookDelivery.objects.get(event=first).next_attempt_at
    deliver(due)
    assert [r.event["data"]["n"] for r in hook.received][2:] == [1, 2]
    assert other.pk  # sent once, first round


def test_a_delivery_waits_for_an_earlier_undispatched_event_of_its_aggregate(sandbox, receiver, no_kicks):
    # a concurrent relay committed the later event's fan-out before the earlier one's
    hook = receiver(default=Answer(200))
    sub = WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    earlier = emit(sandbox, aggregate=("audiences.profile", 5), data={"n": 1})
    later = emit(sandbox, aggregate=("audiences.profile", 5), data={"n": 2})
    WebhookDelivery.objects.create(subscription=sub, event=later)
    type(later).objects.filter(pk=later.pk).update(dispatched_at=timezone.now())

    assert deliver(timezone.now()).claimed == 0

    relay.relay_outbox()
    deliver(timezone.now())
    assert [r.event["data"]["n"] for r in hook.received] == [1, 2]
    assert earlier.pk


def test_an_attempt_claimed_by_a_worker_that_died_counts_and_is_retried_after_the_lease(
    sandbox, receiver, no_kicks, monkeypatch
):
    hook = receiver(default=Answer(200))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()
    now = timezone.now()

    # the worker claims, then dies before sending (an exception stands in for SIGKILL here;
    # tests/reliability kills real processes on PostgreSQL)
    def die(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(sending, "send", die)
    with pytest.raises(KeyboardInterrupt):
        deliver(now)
    monkeypatch.undo()
    delivery = WebhookDelivery.objects.get()
    # one delivery is leased for one request's connect and read timeouts and a margin (13 + 10 s)
    lease = webhook_delivery.lease_for(1)
    assert lease == timedelta(seconds=23)
    assert delivery.attempts == 1 and delivery.next_attempt_at == now + lease

    # within the lease nothing is sent; after it the delivery goes out once
    assert deliver(now + lease - timedelta(seconds=1)).claimed == 0
    assert deliver(now + lease).succeeded == 1
    assert len(hook.received) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.state == DeliveryState.SUCCEEDED


def test_a_last_attempt_whose_worker_died_is_dead_lettered(sandbox, receiver, no_kicks):
    hook = receiver(default=Answer(200))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()
    now = timezone.now()
    WebhookDelivery.objects.update(attempts=webhook_delivery.MAX_ATTEMPTS, last_error="HTTP 500", next_attempt_at=now)

    outcome = deliver(now)

    assert outcome.dead_lettered == 1 and not hook.received
    assert WebhookDelivery.objects.get().state == DeliveryState.DEAD
    assert DeadLetter.objects.get().last_error == "HTTP 500"


def test_a_late_result_does_not_overwrite_a_newer_attempt(sandbox, receiver, no_kicks):
    hook = receiver(default=Answer(200))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()
    now = timezone.now()
    claimed, _ = webhook_delivery._claim_deliveries(now, 10)
    # the lease ran out and another worker took the delivery over (attempt 2)
    WebhookDelivery.objects.update(attempts=2)

    webhook_delivery._record([sending.AttemptResult(claimed[0], ok=False, status_code=500, error="HTTP 500")], now)

    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING and delivery.last_error == ""
    assert [a.attempt for a in delivery.log.all()] == [1]  # the attempt still happened


def test_a_secret_that_cannot_be_decrypted_fails_the_attempt_with_a_reason(sandbox, receiver, no_kicks, settings):
    hook = receiver(default=Answer(200))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    emit(sandbox)
    relay.relay_outbox()
    settings.SECRET_KEY = "a-different-key-" + "y" * 40

    deliver(timezone.now())

    assert not hook.received
    assert "SECRET_KEY changed" in WebhookDelivery.objects.get().last_error


def test_secrets_survive_a_secret_key_rotation_with_a_fallback(sandbox, settings):
    token = signing.encrypt_secret(SECRET)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-key-" + "z" * 50
    settings.SECRET_KEY_FALLBACKS = [old]
    assert signing.decrypt_secret(token) == SECRET
    assert SECRET not in token


def test_delivery_bodies_are_compact_json_of_the_public_event(sandbox):
    event = emit(sandbox, data={"ü": "ß"})
    body = webhook_delivery.event_body(event)
    assert json.loads(body) == event.as_public()
    assert b", " not in body and "ü".encode() in body


def test_a_claim_is_leased_for_as_long_as_sending_it_could_take(settings):
    settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT, settings.WEBHOOK_CONCURRENCY = 3.0, 10.0, 8

    assert webhook_delivery.lease_for(8) == timedelta(seconds=13 + 10)  # one round of 8 threads
    assert webhook_delivery.lease_for(9) == timedelta(seconds=2 * 13 + 10)
    assert webhook_delivery.lease_for(30) == timedelta(seconds=4 * 13 + 10)
    assert webhook_delivery.lease_for(10_000) == webhook_delivery.LEASE  # never longer than LEASE
