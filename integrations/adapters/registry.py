"""The adapter registry: adapter name → class. Built-ins register on import of the package."""

from __future__ import annotations

from typing import Any

from integrations.adapters.base import Adapter

REGISTRY: dict[str, type[Adapter]] = {}


def register(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make `cls` available as `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Adapter] | None:
    return REGISTRY.get(name)


def names() -> list[str]:
    return sorted(REGISTRY)


def sandbox_names() -> list[str]:
    return sorted(name for name, cls in REGISTRY.items() if cls.sandbox_allowed)


def build(
    destination: Any,
    *,
    credentials: dict[str, Any] | None = None,
    breaker: Any = None,
    reference: str = "",
    probing: bool = False,
) -> Adapter:
    """The adapter of a Destination row, with its credentials (read by the caller); its calls
    obey the outbound rules of the destination's environment (integrations/egress.py)."""
    from integrations import egress

    cls = REGISTRY.get(destination.adapter)
    if cls is None:
        from integrations.adapters.base import ConfigurationError

        raise ConfigurationError(
            f"Destination {destination.name!r} uses the adapter {destination.adapter!r}, which is not installed.",
            hint=f"Installed adapters: {', '.join(names())}.",
        )
    return cls(
        destination.config,
        credentials,
        breaker=breaker,
        label=destination.name,
        reference=reference,
        probing=probing,
        policy=egress.destination_policy(sandbox=destination.environment.is_sandbox),
    )
