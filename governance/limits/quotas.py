"""Quotas: how much of an action one may do per period (GLOSSARY: quota, not rate class).

A quota is named (`export-masked`, `export-pii`, `publish`) and set by `QuotaPolicy`
rows that admins edit. The policy for an actor is the most specific active one:
the actor's token, then the user, then one of the user's roles (the largest limit when
several roles have one), then the default row (no token, user or role); at the same
level a policy of the actor's environment beats one for every environment. Defaults
(migration 0004): 50 masked exports and 10 PII exports a month, 100 publishes a day.

Usage is counted per user — across the portal and all of the user's tokens — unless a
token has a policy of its own, which then counts that token's use alone. A policy bound
to one environment counts that environment apart. Periods are UTC days and calendar
months; `resets_at` is the start of the next one.

Counting is atomic and only for accepted work: a service calls `quota_consume` inside
its own transaction, after its checks, so a refused or rolled-back action consumes
nothing, and the conditional UPDATE (`used = used + n WHERE used + n <= limit`) lets
exactly `limit` concurrent actions through. The returned `QuotaStatus` tells the
service whether to warn (`warning()`, past 80 %); the view adds it to its response as
`quota_warning` (`with_quota_warning`).

This module holds the rules: periods, which policy applies, a quota's status and its
refusal. `quota_consume` is governance/limits/services.py; `quota_statuses`,
`quota_status` and `quota_check` are governance/limits/selectors.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from governance.actors import Actor
from governance.limits.errors import QuotaExceeded
from governance.models import QuotaPeriod, QuotaPolicy

# At or past this share of the limit, responses carry a `quota_warning` and the portal warns.
WARNING_PERCENT = 80.0


# --- periods ----------------------------------------------------------------------


def period_bounds(period: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of the UTC day or calendar month that contains `now`."""
    moment = (now or timezone.now()).astimezone(UTC)
    if period == QuotaPeriod.DAY:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    if period == QuotaPeriod.MONTH:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return start, end
    raise ValueError(f"unknown quota period {period!r}")


# --- the status of one quota for one actor ------------------------------------------


@dataclass(frozen=True)
class QuotaStatus:
    name: str
    description: str
    limit: int
    used: int
    period: str
    period_start: datetime
    resets_at: datetime
    # Whose use is counted: "user:<id>" or "token:<id>" (and "@env<id>" for one environment).
    subject: str
    # Where the limit comes from: "token", "user", "role:<name>" or "default".
    source: str

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def percent(self) -> float:
        if self.limit <= 0:
            return 100.0
        return round(self.used * 100.0 / self.limit, 1)

    @property
    def is_warning(self) -> bool:
        return self.percent >= WARNING_PERCENT

    def warning(self) -> dict[str, Any] | None:
        """The `quota_warning` object for a response, or None below 80 %."""
        if not self.is_warning:
            return None
        return {
            "name": self.name,
            "used": self.used,
            "limit": self.limit,
            "percent": self.percent,
            "resets_at": _iso(self.resets_at),
            "message": f"{self.used} of {self.limit} of the {self.name} quota used this {self.period} "
            f"({self.percent:g} %); it resets {self.resets_at:%Y-%m-%d %H:%M} UTC.",
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "period": self.period,
            "resets_at": _iso(self.resets_at),
            "percent": self.percent,
            "warning": self.is_warning,
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def with_quota_warning(body: dict[str, Any], *statuses: QuotaStatus | None) -> dict[str, Any]:
    """`body` plus `quota_warning` when a quota the action consumed is past 80 %
    (the fullest one, when it consumed several)."""
    warnings = [w for w in (s.warning() for s in statuses if s is not None) if w is not None]
    if not warnings:
        return body
    return {**body, "quota_warning": max(warnings, key=lambda w: w["percent"])}


# --- which policy applies -------------------------------------------------------------


def candidates(actor: Actor, names: Iterable[str] | None = None) -> list[QuotaPolicy]:
    """The active policies that could apply to the actor, in one query."""
    user = actor.user
    if user is None:
        return []
    who = Q(token__isnull=True, user__isnull=True) | Q(user=user, token__isnull=True)
    if actor.token is not None:
        who |= Q(token=actor.token)
    policies = QuotaPolicy.objects.filter(who, Q(environment__isnull=True) | Q(environment=actor.environment))
    if names is not None:
        policies = policies.filter(name__in=list(names))
    return list(policies.filter(is_active=True).order_by("name", "id"))


def _rank(policy: QuotaPolicy, actor: Actor) -> tuple[int, int, int] | None:
    """How specific a policy is for the actor (larger wins), or None if it does not apply."""
    if policy.token_id is not None:
        level = 3 if actor.token is not None and policy.token_id == actor.token.pk else -1
    elif policy.user_id is not None:
        level = 2 if actor.user is not None and policy.user_id == actor.user.pk else -1
    elif policy.role:
        level = 1 if policy.role in actor.roles else -1
    else:
        level = 0
    if level < 0:
        return None
    # Same level: one environment's policy beats everyone's; then the largest limit
    # (a person with two roles gets the more generous of their roles' quotas).
    return level, int(policy.environment_id is not None), policy.limit


def choose(policies: Iterable[QuotaPolicy], actor: Actor) -> dict[str, QuotaPolicy]:
    best: dict[str, tuple[tuple[int, int, int], QuotaPolicy]] = {}
    for policy in policies:
        rank = _rank(policy, actor)
        if rank is None:
            continue
        current = best.get(policy.name)
        if current is None or rank > current[0]:
            best[policy.name] = (rank, policy)
    return {name: policy for name, (_, policy) in best.items()}


def resolve_policy(actor: Actor, name: str) -> QuotaPolicy | None:
    """The policy of quota `name` for the actor, or None: no quota applies (system actors too)."""
    return choose(candidates(actor, [name]), actor).get(name)


def subject_of(policy: QuotaPolicy, actor: Actor) -> str:
    if policy.token_id is not None and actor.token is not None:
        subject = f"token:{actor.token.pk}"
    else:
        subject = f"user:{actor.user.pk}"  # type: ignore[union-attr]
    if policy.environment_id is not None:
        subject += f"@env{policy.environment_id}"
    return subject


def _source(policy: QuotaPolicy) -> str:
    if policy.token_id is not None:
        return "token"
    if policy.user_id is not None:
        return "user"
    return f"role:{policy.role}" if policy.role else "default"


def status_of(policy: QuotaPolicy, actor: Actor, used: int, now: datetime) -> QuotaStatus:
    start, end = period_bounds(policy.period, now)
    return QuotaStatus(
        name=policy.name,
        description=policy.description,
        limit=policy.limit,
        used=used,
        period=policy.period,
        period_start=start,
        resets_at=end,
        subject=subject_of(policy, actor),
        source=_source(policy),
    )


def exceeded(status: QuotaStatus, amount: int) -> QuotaExceeded:
    """The refusal of `amount` more of a quota, with what is used and when it resets."""
    when = f"{status.resets_at:%Y-%m-%d %H:%M} UTC"
    return QuotaExceeded(
        f"Your {status.name} quota is {status.limit} per {status.period}; {status.used} used, "
        f"{status.remaining} left, {amount} asked.",
        hint=f"Ask an admin to raise the {status.name} quota, or wait until {when}, when it resets. "
        "GET /api/v1/me/quotas shows every quota.",
        quota=status.name,
        limit=status.limit,
        used=status.used,
        period=status.period,
        resets_at=_iso(status.resets_at),
    )
