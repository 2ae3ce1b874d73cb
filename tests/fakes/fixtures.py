"""Fixtures of the destination tests, loaded as a plugin by the modules that use them:

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.adapters import base, crm
from integrations.destinations import breakers
from tests.fakes.braze import FakeBraze
from tests.fakes.server import FakeServer
from tests.fakes.sfmc import FakeSFMC


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait of the adapters, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(base, "sleep", lambda seconds: waited.append(round(float(seconds), 3)))
    return waited


@pytest.fixture
def clean_state() -> Iterator[None]:
    """No breaker state or cached token leaks between tests."""
    breakers.clear_all()
    crm.forget_tokens()
    yield
    breakers.clear_all()
    crm.forget_tokens()


@pytest.fixture
def braze() -> Iterator[FakeBraze]:
    with FakeBraze() as server:
        yield server


@pytest.fixture
def sfmc() -> Iterator[FakeSFMC]:
    with FakeSFMC() as server:
        yield server


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake
