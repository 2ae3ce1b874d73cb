"""Fixtures and helpers shared by the relay, webhook and reliability tests (subscriptions:
WebhookSubscriptionFactory in tests/factories.py).

Import the fixtures into a test module (`from tests.reliability.fixtures import receiver`).
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
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


class HeldProcess:
    """`python -m MODULE ARGS…` on the test database: it prints `HOLDING …` when it reaches
    the hook where the test kills it (or `DONE` when it finished without reaching it)."""

    def __init__(self, module: str, *args: str, name: str, hook_timeout: float = 60) -> None:
        from django.conf import settings

        from tests.processes import ROOT, clean_env

        env = clean_env(
            DATABASE_URL=database_url(),
            DJANGO_SETTINGS_MODULE="marketerapi.settings_test",
            SECRET_KEY=settings.SECRET_KEY,
        )
        self.name, self.hook_timeout = name, hook_timeout
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_hook(self) -> None:
        while True:
            try:
                line = self.lines.get(timeout=self.hook_timeout)
            except queue.Empty:
                self.kill()
                pytest.fail(f"the {self.name} never reached its hook:\n" + "".join(self.output))
            if line.startswith("HOLDING"):
                return
            if line.startswith("DONE"):
                pytest.fail(f"the {self.name} finished without reaching its hook:\n" + "".join(self.output))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.returncode == -signal.SIGKILL


def database_url() -> str:
    """The test database's URL, for a child process."""
    from django.db import connection

    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
