"""Helpers for the audience definition tests: the body of a create request.

Audiences, versions and teams come from tests/factories.py (AudienceFactory,
AudienceVersionFactory with live=True, team).
"""

from __future__ import annotations

from typing import Any


def create_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /api/v1/audiences body; an override of None leaves the field out."""
    body = {
        "name": "Lapsed EU customers",
        "owner_team": "growth",
        "channel": "email",
        "purpose": "winback",
        "description": "EU customers who lapsed.",
        "rules": {"all": [{"attr": "region", "op": "in", "value": ["EU"]}, {"consent": "email", "is": True}]},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}
