"""No test here reaches the network: test names resolve through a fake resolver, connections
go to this machine only, and the fake vendors on 127.0.0.1 are allow-listed as outbound
targets (tests/fakes/network.py)."""

import pytest

from tests.fakes.network import attacker_names, local_targets_allowed, loopback_only, production_rules, resolver

__all__ = ["attacker_names", "local_targets_allowed", "loopback_only", "production_rules", "resolver"]


@pytest.fixture(autouse=True)
def _network_for_tests(resolver, loopback_only, local_targets_allowed):
    """Every test of this folder runs with the fake resolver, loopback-only connections and
    loopback allow-listed (tests of the production rules ask for `production_rules`)."""
    yield
