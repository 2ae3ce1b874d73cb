"""Destination adapters behind one interface (see base.py); `build(destination)` makes one.

Built in: `webhook` (JSON batches to a URL), `file` (CSV/JSONL drops in a directory),
`crm` (data extension upserts, Salesforce Marketing Cloud style) and `engagement`
(user attributes, subscriptions and triggered sends, Braze style).
"""

from integrations.adapters import crm, engagement, file, webhook  # noqa: F401  (they register themselves)
from integrations.adapters.base import (
    Adapter,
    AdapterError,
    Checkpoint,
    CircuitOpen,
    ConfigProblem,
    ConfigurationError,
    DeliveryResult,
    HealthResult,
    RateLimited,
    ServerFailure,
    VendorRejected,
)
from integrations.adapters.registry import REGISTRY, build, get, names, register, sandbox_names

__all__ = [
    "REGISTRY",
    "Adapter",
    "AdapterError",
    "Checkpoint",
    "CircuitOpen",
    "ConfigProblem",
    "ConfigurationError",
    "DeliveryResult",
    "HealthResult",
    "RateLimited",
    "ServerFailure",
    "VendorRejected",
    "build",
    "get",
    "names",
    "register",
    "sandbox_names",
]
