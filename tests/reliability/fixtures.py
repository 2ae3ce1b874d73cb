"""Fixtures and helpers shared by the relay, webhook and reliability tests (subscriptions:
WebhookSubscriptionFactory in tests/factories.py).

Import the fixtures into a test module (`from tests.reliability.fixtures import receiver`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import transaction

from governance import outbox
from governance.models import Environment, OutboxEvent
from tests.factories import WEBHOOK_SECRET
from tests.reliability.receivers import Receiver, receivers

# The secret WebhookSubscriptionFactory signs with, for receivers that verify signatures.
SECRET = WEBHOOK_SECRET


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """receiver(Answer(500), default=Answer(200)) → a started local receiver, stopped after the test."""
    with receivers() as start:
        yield start


@pytest.fixture
def no_kicks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the relay's kicks instead of running (or publishing) them, so a test drives each step."""
    from integrations.outbox import relay
    from integrations.webhooks import delivery

    kicks: list[str] = []
    monkeypatch.setattr(relay, "kick_relay", lambda: kicks.append("relay"))
    monkeypatch.setattr(delivery, "kick_deliveries", lambda: kicks.append("deliveries"))
    return kicks


def emit(
    environment: Environment,
    event_type: str = "consent.updated",
    aggregate: tuple[str, Any] = ("audiences.profile", 1),
    data: dict[str, Any] | None = None,
) -> OutboxEvent:
    with transaction.atomic():
        return outbox.emit(
            event_type, aggregate, data or {"external_id": f"cust-{aggregate[1]}"}, environment=environment
        )
