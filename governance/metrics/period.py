"""The period and environment of a metrics question: `environment`, `since`, `until`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.http import Http404
from django.utils import timezone

from governance.actors import Actor
from governance.audit.selectors import _parse_instant
from governance.metrics.errors import InvalidPeriod
from governance.models import Environment
from marketerapi.api import UnknownQueryParameters

DEFAULT_DAYS = 30
PARAMETERS = ("environment", "since", "until")


@dataclass(frozen=True)
class Period:
    environment: Environment
    since: datetime
    until: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"environment": self.environment.slug, "since": _iso(self.since), "until": _iso(self.until)}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def period_parse(*, actor: Actor, params: Mapping[str, Any], extra: Iterable[str] = ()) -> Period:
    """The actor's environment (another one is a 404, as everywhere) and [since, until):
    the last 30 days unless given."""
    allowed = (*PARAMETERS, *extra)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UnknownQueryParameters(
            f"Unknown query parameter(s): {', '.join(unknown)}.",
            hint=f"Use only: {', '.join(allowed)}.",
            allowed_parameters=list(allowed),
        )
    slug = str(params.get("environment") or "").strip()
    if slug and slug != actor.environment.slug:
        raise Http404(f"No environment {slug[:40]!r} here: metrics answer for your token's or session's environment.")
    errors: list[dict[str, str]] = []
    now = timezone.now()
    raw_since, raw_until = str(params.get("since") or "").strip(), str(params.get("until") or "").strip()
    until = _parse_instant("until", raw_until, errors) if raw_until else now
    since = _parse_instant("since", raw_since, errors) if raw_since else None
    if errors:
        raise InvalidPeriod("Some dates could not be read.", errors=errors)
    assert until is not None
    since = since or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise InvalidPeriod(f"since ({_iso(since)}) must be before until ({_iso(until)}).")
    return Period(actor.environment, since, until)
