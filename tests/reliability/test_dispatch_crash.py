"""Kill the dispatcher with SIGKILL between claim and send (and between send and record):
after a restart every event reaches every subscriber, once — or, when the kill came after
the send, again with the same event id.

A real process holding real row locks is killed, so these run on PostgreSQL (skipped on
SQLite, failed with REQUIRE_SERVICES=1). tests/integrations/test_webhooks_delivery.py covers
the same steps on SQLite with an exception injected after the claim.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from governance.models import OutboxEvent
from integrations.models import DeliveryState, WebhookDelivery
from integrations.outbox import relay
from integrations.webhooks import delivery
from tests.conftest import require_service
from tests.factories import WebhookSubscriptionFactory
from tests.reliability import fixtures
from tests.reliability.fixtures import emit
from tests.reliability.receivers import Answer

# Shared fixtures (tests/reliability/fixtures.py), bound here so pytest finds them.
no_kicks = fixtures.no_kicks
receiver = fixtures.receiver

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def postgres(django_db_serialized_rollback, transactional_db):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "the crash tests kill a process that holds row locks; set DATABASE_URL")


def Dispatcher(stage: str) -> fixtures.HeldProcess:
    """`python -m tests.reliability.dispatcher_process STAGE` on the test database."""
    return fixtures.HeldProcess("tests.reliability.dispatcher_process", stage, name="dispatcher")


@pytest.fixture
def two_subscribers(postgres, sandbox, receiver, no_kicks):
    first, second = receiver(default=Answer(200)), receiver(default=Answer(200))
    WebhookSubscriptionFactory(environment=sandbox, url=first.url)
    WebhookSubscriptionFactory(environment=sandbox, url=second.url)
    event = emit(sandbox)
    return event, first, second


def test_killed_after_claiming_events_the_relay_loses_nothing(two_subscribers):
    event, first, second = two_subscribers

    # a relay claims the event (row locked, transaction open) and is killed
    dispatcher = Dispatcher("relay-after-claim")
    dispatcher.wait_for_hook()
    # while it holds the row, another relay skips it rather than waiting or taking it
    assert relay.relay_outbox().events == 0
    dispatcher.kill()

    # its transaction died with it: the event is still to dispatch, nothing was fanned out
    event.refresh_from_db()
    assert event.dispatched_at is None and event.attempts == 0
    assert not WebhookDelivery.objects.exists()

    # after a restart: delivered once per subscriber
    assert relay.relay_outbox().deliveries == 2
    assert delivery.deliver_webhooks().succeeded == 2
    assert first.event_ids() == second.event_ids() == [event.public_id]


def test_killed_after_claiming_deliveries_nothing_is_lost_or_doubled(two_subscribers):
    event, first, second = two_subscribers
    relay.relay_outbox()

    dispatcher = Dispatcher("deliver-after-claim")
    dispatcher.wait_for_hook()
    dispatcher.kill()

    # the claim committed: the attempt counts and the deliveries are leased, not sent
    assert list(WebhookDelivery.objects.values_list("attempts", flat=True)) == [1, 1]
    assert not first.received and not second.received
    assert delivery.deliver_webhooks().claimed == 0  # still leased

    # once the lease has run out, another worker sends them: once per subscriber
    outcome = delivery.deliver_webhooks(now=timezone.now() + delivery.LEASE + timedelta(seconds=5))
    assert outcome.succeeded == 2
    assert first.event_ids() == second.event_ids() == [event.public_id]
    assert set(WebhookDelivery.objects.values_list("state", "attempts")) == {(DeliveryState.SUCCEEDED, 2)}


def test_killed_after_sending_the_event_comes_again_with_the_same_id(two_subscribers):
    event, first, second = two_subscribers
    relay.relay_outbox()

    dispatcher = Dispatcher("deliver-after-send")
    dispatcher.wait_for_hook()
    dispatcher.kill()

    # both receivers have it, but the dispatcher died before recording that
    assert first.event_ids() == second.event_ids() == [event.public_id]
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {DeliveryState.PENDING}

    # at least once: after the lease it is sent again, and the duplicate has the same event id
    delivery.deliver_webhooks(now=timezone.now() + delivery.LEASE + timedelta(seconds=5))
    assert first.event_ids() == second.event_ids() == [event.public_id, event.public_id]
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {DeliveryState.SUCCEEDED}
    assert OutboxEvent.objects.get().dispatched_at is not None
