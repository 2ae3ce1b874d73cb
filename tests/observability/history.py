"""A fixture history with known answers: audit events, request-log rows and approval
requests placed at chosen moments of one month in sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from governance.models import AuditEvent, Environment, Outcome, RequestLog

T0 = datetime(2026, 11, 1, tzinfo=UTC)
PERIOD = {"since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def event(
    environment: Environment,
    action: str,
    at: datetime,
    *,
    target: str = "",
    door: str = "api",
    user: Any = None,
    outcome: str = Outcome.ALLOWED,
    target_type: str = "audiences.audience",
) -> AuditEvent:
    return AuditEvent.objects.create(
        environment=environment,
        occurred_at=at,
        actor_user=user,
        actor_label=user.username if user is not None else "system (task)",
        door=door,
        action=action,
        target_type=target_type if target else "",
        target_id=target,
        outcome=outcome,
    )


def request(
    environment: Environment,
    at: datetime,
    route: str,
    status: int,
    *,
    user: Any = None,
    code: str = "",
    rate_class: str = "",
    door: str = "api",
    method: str = "POST",
) -> RequestLog:
    return RequestLog.objects.create(
        environment_id=environment.pk,
        occurred_at=at,
        user_id=user.pk if user is not None else None,
        username=user.username if user is not None else "",
        door=door,
        method=method,
        route=route,
        status=status,
        code=code,
        rate_class=rate_class,
        latency_ms=5,
    )
