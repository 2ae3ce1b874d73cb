"""Fixtures and helpers shared by the relay, webhook and reliability tests.

Import the fixtures into a test module (`from tests.reliability.fixtures import receiver`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import transaction

from governance import outbox
from governance.actors import Actor
from governance.models import Door, Environment, OutboxEvent
from integrations.models import WebhookSubscription
from integrations.webhooks import services as webhooks
from tests.reliability.receivers import Receiver, receivers

SECRET = "whsec_test-secret-0123456789abcdefghij"


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


def subscribe(
    environment: Environment,
    url: str,
    event_types: list[str] | None = None,
    secret: str = SECRET,
) -> WebhookSubscription:
    return webhooks.webhook_create(
        actor=Actor.system(environment, door=Door.CLI),
        url=url,
        event_types=event_types or ["consent.updated"],
        secret=secret,
    ).subscription


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
