"""The one write of the limits: `quota_consume`, which counts accepted work against the
actor's quota inside the transaction of that work (governance/limits/quotas.py says which
policy applies; the reads are governance/limits/selectors.py).

Rate-limit counters live in Redis (governance/limits/ratelimit.py) and idempotency
records are the bookkeeping of a request (governance/limits/idempotency.py): neither is
governed state.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from governance.actors import Actor
from governance.limits.quotas import QuotaStatus, exceeded, period_bounds, resolve_policy, status_of, subject_of
from governance.models import QuotaUsage


class OutsideTransaction(RuntimeError):
    """quota_consume() was called outside the transaction of the work it counts."""


def quota_consume(actor: Actor, name: str, amount: int = 1) -> QuotaStatus | None:
    """Count `amount` of quota `name` for the actor, or raise QuotaExceeded.

    Call it inside the transaction of the work it counts, after the work's own checks: a
    rollback then takes the count back. Returns the status after counting (None when no
    quota applies); `status.warning()` is what the view adds as `quota_warning`.
    """
    if amount < 1:
        raise ValueError("amount must be at least 1")
    if not transaction.get_connection().in_atomic_block:
        raise OutsideTransaction("quota_consume() must run inside the transaction of the work it counts")
    policy = resolve_policy(actor, name)
    if policy is None:
        return None
    now = timezone.now()
    start, _ = period_bounds(policy.period, now)
    subject = subject_of(policy, actor)
    row = QuotaUsage.objects.filter(quota=name, subject=subject, period_start=start)
    # Conditional UPDATE: the database checks and adds in one statement. A concurrent
    # consumer waits for the row lock and re-evaluates the condition on the committed
    # value, so exactly `limit` units get through however many race.
    counted = row.filter(used__lte=policy.limit - amount).update(used=F("used") + amount)
    if not counted:
        # The period's row may not exist yet. INSERT … ON CONFLICT DO NOTHING creates it
        # race-safely (a concurrent creator makes this a no-op), then count again.
        QuotaUsage.objects.bulk_create(
            [QuotaUsage(quota=name, subject=subject, period_start=start, used=0)], ignore_conflicts=True
        )
        counted = row.filter(used__lte=policy.limit - amount).update(used=F("used") + amount)
    used = row.values_list("used", flat=True).first() or 0
    status = status_of(policy, actor, used, now)
    if not counted:
        raise exceeded(status, amount)
    return status


def quota_refund(*, name: str, subject: str, period_start: datetime, amount: int = 1) -> bool:
    """Give back `amount` units that `quota_consume` counted for work that was then not
    done (a publish superseded before it was built): the same row it counted on
    (`QuotaStatus.subject`, `.period_start`), never below zero. In the transaction of the
    change that undoes the work; False when there was nothing to give back."""
    if amount < 1:
        raise ValueError("amount must be at least 1")
    if not transaction.get_connection().in_atomic_block:
        raise OutsideTransaction("quota_refund() must run inside the transaction of the change it accounts for")
    row = QuotaUsage.objects.filter(quota=name, subject=subject, period_start=period_start, used__gte=amount)
    return bool(row.update(used=F("used") - amount))
