"""The outbox relay: claim undispatched events in id order, fan them out to matching active
subscriptions (idempotently), mark them dispatched; kicked after commit, swept by beat."""

from __future__ import annotations

import pytest
from django.db import transaction

from governance import outbox
from governance.models import OutboxEvent
from integrations.models import DeadLetter, SubscriptionState, WebhookDelivery
from integrations.outbox import relay
from integrations.tasks import deliver_webhooks_task, relay_outbox_task
from integrations.webhooks import delivery
from marketerapi.celery import app
from tests.factories import WebhookSubscriptionFactory
from tests.reliability import fixtures
from tests.reliability.fixtures import emit

# Shared fixtures (tests/reliability/fixtures.py), bound here so pytest finds them.
no_kicks = fixtures.no_kicks

HOOK = "http://127.0.0.1:9/hook"


def test_fans_out_to_matching_active_subscriptions_of_the_events_environment(
    sandbox, pilot, no_kicks, django_capture_on_commit_callbacks
):
    # given subscriptions: two matching, one of another type, one paused, one in another environment
    wanted = WebhookSubscriptionFactory(
        environment=sandbox, url=HOOK, event_types=["consent.updated", "audience.published"]
    )
    also = WebhookSubscriptionFactory(environment=sandbox, url=HOOK + "2", event_types=["consent.updated"])
    WebhookSubscriptionFactory(environment=sandbox, url=HOOK + "3", event_types=["audience.published"])
    paused = WebhookSubscriptionFactory(environment=sandbox, url=HOOK + "4", event_types=["consent.updated"])
    paused.state = SubscriptionState.PAUSED
    paused.save(update_fields=["state"])
    WebhookSubscriptionFactory(environment=pilot, url="https://example.com/hook", event_types=["consent.updated"])
    event = emit(sandbox, "consent.updated")

    # when the relay runs
    with django_capture_on_commit_callbacks(execute=True):
        outcome = relay.relay_outbox()

    # then one delivery per matching active subscription, and the event is dispatched
    assert outcome.events == 1 and outcome.deliveries == 2
    assert set(WebhookDelivery.objects.values_list("subscription_id", flat=True)) == {wanted.pk, also.pk}
    event.refresh_from_db()
    assert event.dispatched_at is not None and event.attempts == 1
    assert no_kicks == ["deliveries"]  # the relay kicks the sender after its commit


def test_relay_is_idempotent(sandbox, no_kicks):
    WebhookSubscriptionFactory(environment=sandbox, url=HOOK)
    event = emit(sandbox)
    relay.relay_outbox()

    # a second run finds nothing; a re-dispatch of the same event adds no delivery
    assert relay.relay_outbox().events == 0
    OutboxEvent.objects.filter(pk=event.pk).update(dispatched_at=None)
    again = relay.relay_outbox()

    assert again.events == 1
    assert WebhookDelivery.objects.filter(event=event).count() == 1


def test_claims_in_id_order_in_batches(sandbox, no_kicks, django_assert_max_num_queries):
    WebhookSubscriptionFactory(environment=sandbox, url=HOOK)
    events = [emit(sandbox, aggregate=("audiences.profile", i)) for i in range(5)]

    first = relay.relay_batch(batch_size=2)
    assert first.events == 2
    assert list(
        OutboxEvent.objects.filter(dispatched_at__isnull=False).order_by("id").values_list("id", flat=True)
    ) == [
        events[0].pk,
        events[1].pk,
    ]

    # the rest in batches of 2: claim, subscriptions, deliveries, mark dispatched (+ savepoints)
    with django_assert_max_num_queries(3 * 6):
        rest = relay.relay_outbox(batch_size=2)
    assert rest.events == 3 and rest.batches == 2
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    assert WebhookDelivery.objects.count() == 5


def test_emit_schedules_one_kick_per_transaction_after_commit(sandbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        outbox.emit("consent.updated", ("audiences.profile", 1), {}, environment=sandbox)
        outbox.emit("consent.updated", ("audiences.profile", 2), {}, environment=sandbox)
        outbox.emit_many("consent.updated", sandbox, [("audiences.profile", 3, {})])

    assert [cb.__name__ for cb in callbacks] == ["_announce"]


def test_the_relay_is_kicked_when_events_commit(sandbox, monkeypatch, django_capture_on_commit_callbacks):
    kicks = []
    monkeypatch.setattr(relay, "kick_relay", lambda: kicks.append(1))
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        outbox.emit("consent.updated", ("audiences.profile", 1), {}, environment=sandbox)
        assert kicks == []

    assert kicks == [1]


def test_emit_many_of_nothing_schedules_nothing(sandbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        outbox.emit_many("consent.updated", sandbox, [])
    assert callbacks == []


def test_a_kick_that_cannot_reach_the_broker_is_logged_not_raised(monkeypatch, caplog):
    def broken() -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(relay_outbox_task, "delay", broken)
    monkeypatch.setattr(deliver_webhooks_task, "delay", broken)

    relay.kick_relay()
    delivery.kick_deliveries()

    assert "periodic sweep" in caplog.text


def test_a_kick_runs_the_relay_task(sandbox, monkeypatch):
    ran: list[str] = []
    monkeypatch.setattr(relay_outbox_task, "delay", lambda: ran.append("relay"))
    relay.kick_relay()
    assert ran == ["relay"]


class FakeRedis:
    """SET NX EX and DELETE, like Redis, for one process."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def set(self, key: str, value: str, nx: bool = False, ex: int | None = None) -> bool:
        if nx and key in self.keys:
            return False
        self.keys[key] = value
        return True

    def delete(self, key: str) -> int:
        return int(self.keys.pop(key, None) is not None)


def test_kicks_coalesce_while_a_relay_waits_for_a_worker(sandbox, monkeypatch, settings):
    """With a broker, a burst of commits queues one relay task, not one each; once the relay
    starts, the next commit queues another (its event may come after the relay's claim)."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    store = FakeRedis()
    monkeypatch.setattr(relay, "_kick_store", lambda: store)
    queued: list[str] = []
    monkeypatch.setattr(relay_outbox_task, "delay", lambda: queued.append("relay"))

    for _ in range(5):
        relay.kick_relay()
    assert queued == ["relay"]

    monkeypatch.setattr(relay, "relay_outbox", lambda **kwargs: relay.RelayOutcome())
    relay_outbox_task.run()  # a worker takes the task: the mark is cleared before it claims
    relay.kick_relay()
    assert queued == ["relay", "relay"]


def test_a_failed_kick_does_not_leave_its_mark(sandbox, monkeypatch, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    store = FakeRedis()
    monkeypatch.setattr(relay, "_kick_store", lambda: store)

    def broken() -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(relay_outbox_task, "delay", broken)
    relay.kick_relay()
    assert relay.KICK_PENDING_KEY not in store.keys


def test_in_process_every_kick_runs_the_relay(sandbox, monkeypatch, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    ran: list[str] = []
    monkeypatch.setattr(relay_outbox_task, "delay", lambda: ran.append("relay"))
    relay.kick_relay()
    relay.kick_relay()
    assert ran == ["relay", "relay"]


def test_tasks_wrap_the_relay_and_the_sender(sandbox, no_kicks):
    WebhookSubscriptionFactory(environment=sandbox, url=HOOK)
    emit(sandbox)

    result = relay_outbox_task.apply().get()

    assert result["events"] == 1 and result["deliveries"] == 1
    assert relay_outbox_task.acks_late and relay_outbox_task.reject_on_worker_lost
    assert deliver_webhooks_task.acks_late


def test_the_sweeps_are_in_the_beat_schedule():
    app.finalize()
    schedule = app.conf.beat_schedule
    assert schedule["integrations.relay_outbox sweep"]["task"] == "integrations.relay_outbox"
    assert schedule["integrations.deliver_webhooks sweep"]["task"] == "integrations.deliver_webhooks"
    assert schedule["integrations.deliver_webhooks sweep"]["schedule"] <= 10


def test_an_event_whose_fan_out_keeps_failing_is_dead_lettered_without_holding_up_the_others(
    sandbox, no_kicks, monkeypatch
):
    WebhookSubscriptionFactory(environment=sandbox, url=HOOK)
    bad = emit(sandbox, aggregate=("audiences.profile", 1))
    good = emit(sandbox, aggregate=("audiences.profile", 2))
    original = relay._fan_out

    def fan_out(events):
        if any(e.pk == bad.pk for e in events):
            raise RuntimeError("subscription data is corrupt")
        return original(events)

    monkeypatch.setattr(relay, "_fan_out", fan_out)

    first = relay.relay_outbox()

    # the good event went through; the bad one counts an attempt with its error
    assert first.events == 1 and first.failed == 1
    bad.refresh_from_db()
    assert bad.dispatched_at is None and bad.attempts == 1 and "corrupt" in bad.last_error
    assert WebhookDelivery.objects.filter(event=good).count() == 1

    # each sweep tries it again; after the fifth failure it is a dead letter
    for _ in range(relay.MAX_DISPATCH_ATTEMPTS - 1):
        relay.relay_outbox()
    bad.refresh_from_db()
    assert bad.attempts == relay.MAX_DISPATCH_ATTEMPTS and bad.dispatched_at is not None
    letter = DeadLetter.objects.get(kind="outbox_dispatch")
    assert letter.reference_id == str(bad.pk) and letter.payload["event_id"] == bad.public_id
    assert "corrupt" in letter.last_error and letter.attempts == relay.MAX_DISPATCH_ATTEMPTS
    assert relay.relay_outbox().events == 0

    # replayed once the cause is fixed, it is dispatched
    from governance.actors import Actor
    from integrations.webhooks import services as webhooks

    monkeypatch.setattr(relay, "_fan_out", original)
    webhooks.dead_letter_replay(actor=Actor.system(sandbox), dead_letter=letter)
    assert relay.relay_outbox().events == 1
    assert WebhookDelivery.objects.filter(event=bad).count() == 1


@pytest.mark.parametrize("batch_size", [1, 3])
def test_outcome_counts(sandbox, no_kicks, batch_size):
    WebhookSubscriptionFactory(environment=sandbox, url=HOOK)
    for i in range(4):
        emit(sandbox, aggregate=("audiences.profile", i))
    outcome = relay.relay_outbox(batch_size=batch_size)
    assert outcome.as_dict()["events"] == 4 and outcome.deliveries == 4
