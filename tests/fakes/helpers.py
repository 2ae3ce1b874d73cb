"""Helpers for the destination tests: fake vendors' configs and credentials (the rows:
DestinationFactory in tests/factories.py, with `credentials=` stored encrypted)."""

from __future__ import annotations

from typing import Any

from tests.fakes.braze import FakeBraze
from tests.fakes.sfmc import FakeSFMC

SFMC_CREDENTIALS = {"client_id": "sfmc-client-id", "client_secret": "sfmc-client-secret-xyz"}
BRAZE_CREDENTIALS = {"api_key": "braze-rest-key-123"}


def braze_config(fake: FakeBraze, **extra: Any) -> dict[str, Any]:
    return {"base_url": fake.url, "subscription_group_id": "sg-1", "campaign_id": "c-123", **extra}


def sfmc_config(fake: FakeSFMC, **extra: Any) -> dict[str, Any]:
    return {"auth_url": fake.url, "data_extension_key": "DE-AUD", "poll_interval": 0.0, **extra}
