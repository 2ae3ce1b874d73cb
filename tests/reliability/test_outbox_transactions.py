"""The outbox is part of the caller's transaction: a rolled-back change leaves no event, no
delivery and no kick; a committed one kicks the relay once, after the commit."""

from __future__ import annotations

import pytest
from django.db import transaction

from governance import outbox
from governance.models import OutboxEvent
from integrations.models import WebhookDelivery
from integrations.outbox import relay
from tests.factories import WebhookSubscriptionFactory
from tests.reliability import fixtures

# Shared fixtures (tests/reliability/fixtures.py), bound here so pytest finds them.
no_kicks = fixtures.no_kicks


class Boom(Exception):
    pass


@pytest.fixture
def subscribed(django_db_serialized_rollback, transactional_db, sandbox, no_kicks):
    WebhookSubscriptionFactory(environment=sandbox, url="http://127.0.0.1:9/hook", event_types=["consent.updated"])
    return no_kicks


def test_a_rolled_back_transaction_leaves_no_outbox_row_no_delivery_and_no_kick(sandbox, subscribed):
    kicks = subscribed

    with pytest.raises(Boom), transaction.atomic():
        outbox.emit("consent.updated", ("audiences.profile", 1), {"external_id": "c-1"}, environment=sandbox)
        outbox.emit_many("consent.updated", sandbox, [("audiences.profile", 2, {})])
        assert OutboxEvent.objects.count() == 2  # visible inside the transaction only
        raise Boom

    assert not OutboxEvent.objects.exists()
    assert relay.relay_outbox().events == 0
    assert not WebhookDelivery.objects.exists()
    assert kicks == []


def test_a_rolled_back_savepoint_takes_its_events_along(sandbox, subscribed):
    kicks = subscribed

    with transaction.atomic():
        kept = outbox.emit("consent.updated", ("audiences.profile", 1), {}, environment=sandbox)
        with pytest.raises(Boom), transaction.atomic():
            outbox.emit("consent.updated", ("audiences.profile", 2), {}, environment=sandbox)
            raise Boom
        assert kicks == []  # not before the commit

    assert list(OutboxEvent.objects.values_list("pk", flat=True)) == [kept.pk]
    assert kicks == ["relay"]
    assert relay.relay_outbox().deliveries == 1


def test_a_kick_registered_in_a_rolled_back_savepoint_is_registered_again(sandbox, subscribed):
    kicks = subscribed

    with transaction.atomic():
        with pytest.raises(Boom), transaction.atomic():
            outbox.emit("consent.updated", ("audiences.profile", 1), {}, environment=sandbox)
            raise Boom
        outbox.emit("consent.updated", ("audiences.profile", 2), {}, environment=sandbox)

    assert kicks == ["relay"]
    assert OutboxEvent.objects.count() == 1


def test_emit_outside_a_transaction_is_refused(django_db_serialized_rollback, transactional_db, sandbox):
    with pytest.raises(outbox.OutsideTransaction):
        outbox.emit("consent.updated", ("audiences.profile", 1), {}, environment=sandbox)
