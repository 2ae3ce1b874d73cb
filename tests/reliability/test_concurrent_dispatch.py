"""Several dispatchers at once (threads with their own connections, on PostgreSQL): SKIP
LOCKED hands each event and each delivery to exactly one of them."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from governance import outbox
from governance.models import OutboxEvent
from integrations.models import DeliveryState, WebhookDelivery
from integrations.outbox import relay
from integrations.webhooks import delivery
from tests.conftest import require_service
from tests.factories import WebhookSubscriptionFactory
from tests.reliability import fixtures
from tests.reliability.receivers import Answer

# Shared fixtures (tests/reliability/fixtures.py), bound here so pytest finds them.
no_kicks = fixtures.no_kicks
receiver = fixtures.receiver

pytestmark = [pytest.mark.services, pytest.mark.slow]

EVENTS = 300
WORKERS = 4


@pytest.fixture
def postgres(django_db_serialized_rollback, transactional_db):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "concurrent claims need SELECT … FOR UPDATE SKIP LOCKED; set DATABASE_URL")


def run_in_threads(target, count=WORKERS):
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def work():
        try:
            start.wait()
            target()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def test_concurrent_relays_and_senders_handle_each_piece_of_work_once(postgres, sandbox, receiver, no_kicks):
    first, second = receiver(default=Answer(200)), receiver(default=Answer(200))
    WebhookSubscriptionFactory(environment=sandbox, url=first.url)
    WebhookSubscriptionFactory(environment=sandbox, url=second.url)
    with transaction.atomic():
        outbox.emit_many("consent.updated", sandbox, [("audiences.profile", i, {"n": i}) for i in range(EVENTS)])

    run_in_threads(lambda: relay.relay_outbox(batch_size=25))

    # every event claimed by exactly one relay (one attempt each), fanned out once
    assert set(OutboxEvent.objects.values_list("attempts", flat=True)) == {1}
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    assert WebhookDelivery.objects.count() == 2 * EVENTS

    run_in_threads(lambda: delivery.deliver_webhooks(batch_size=20))

    # every delivery sent by exactly one sender
    assert set(WebhookDelivery.objects.values_list("state", "attempts")) == {(DeliveryState.SUCCEEDED, 1)}
    for hook in (first, second):
        ids = hook.event_ids()
        assert len(ids) == EVENTS and len(set(ids)) == EVENTS
