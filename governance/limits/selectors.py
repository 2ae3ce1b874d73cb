"""Reads of quotas: what applies to an actor and how much of it is used this period
(GET /me/quotas, the portal's home page), and `quota_check`, which refuses early without
counting. Counting is governance/limits/services.py; which policy applies, periods and
the status of one quota are governance/limits/quotas.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from governance.actors import Actor
from governance.limits.quotas import QuotaStatus, candidates, choose, exceeded, period_bounds, status_of, subject_of
from governance.models import QuotaUsage


def quota_statuses(actor: Actor, names: Iterable[str] | None = None) -> list[QuotaStatus]:
    """Every quota that applies to the actor, with its use this period: two queries,
    however many quotas there are (GET /me/quotas)."""
    now = timezone.now()
    chosen = choose(candidates(actor, names), actor)
    if not chosen:
        return []
    keys = {name: (subject_of(policy, actor), period_bounds(policy.period, now)[0]) for name, policy in chosen.items()}
    rows = QuotaUsage.objects.filter(
        quota__in=list(keys),
        subject__in={subject for subject, _ in keys.values()},
        period_start__in={start for _, start in keys.values()},
    ).values_list("quota", "subject", "period_start", "used")
    used = {(quota, subject, start): count for quota, subject, start, count in rows}
    return [status_of(policy, actor, used.get((name, *keys[name]), 0), now) for name, policy in sorted(chosen.items())]


def quota_status(actor: Actor, name: str) -> QuotaStatus | None:
    statuses = quota_statuses(actor, [name])
    return statuses[0] if statuses else None


def quota_check(actor: Actor, name: str, amount: int = 1) -> QuotaStatus | None:
    """Raise QuotaExceeded when `amount` more would pass the limit; consumes nothing.

    For refusing early (before a long validation); the count that matters is
    quota_consume's, which re-checks atomically.
    """
    status = quota_status(actor, name)
    if status is not None and status.used + amount > status.limit:
        raise exceeded(status, amount)
    return status
