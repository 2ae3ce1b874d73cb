"""Local fake servers for the destination adapters' tests (127.0.0.1, random ports)."""

from tests.fakes.braze import FakeBraze
from tests.fakes.server import FakeServer, Recorded
from tests.fakes.sfmc import FakeSFMC

__all__ = ["FakeBraze", "FakeSFMC", "FakeServer", "Recorded"]
