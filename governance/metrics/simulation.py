"""Policy simulation: replay a period (default the last 30 days) of the request log and the
audit trail against a proposed rule, and say who would have been limited, refused or asked
for approval, and how often — before an admin saves the rule.

- A rate limit (`rate_class`, `limit` per 60 s, optionally for one role): the accepted
  requests of that class per caller (token, else person) per minute; what a minute held
  beyond the limit would have been a 429. (Fixed minutes: the limiter's window slides, so
  this slightly undercounts bursts across a minute's edge.)
- A quota (`action`, `limit` per `period`, optionally for one role): the allowed actions
  per person per day or month; beyond the limit, a 429 `quota_exceeded`.
- An approval policy (`action`, optional `metric` and `threshold`, `steps`): the actions
  done or requested by people; those the rule matches would have asked for approval
  (never in a sandbox). The metric is read from what the action recorded (e.g. the
  reach of a publish).

Each replay is one GROUP BY statement; only the rows over the limit come back.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count
from django.db.models.functions import Trunc

from governance.metrics.period import Period
from governance.models import AuditEvent, Outcome, RequestLog

RATE_LIMIT, QUOTA, APPROVAL_POLICY = "rate_limit", "quota", "approval_policy"
KINDS = (RATE_LIMIT, QUOTA, APPROVAL_POLICY)


def _role_members(role: str) -> Any:
    return User.objects.filter(groups__name=role).values("pk")


def _result(kind: str, rule: dict[str, Any], period: Period, counts: Counter, current: int) -> dict[str, Any]:
    verb = {RATE_LIMIT: "limited", QUOTA: "refused", APPROVAL_POLICY: "asked for approval"}[kind]
    affected = [
        {"username": name, "times": times} for name, times in sorted(counts.items(), key=lambda i: (-i[1], i[0]))
    ]
    total = sum(counts.values())
    return {
        "kind": kind,
        "rule": rule,
        "period": period.as_dict(),
        "would_be": verb,
        "total": total,
        "people": len(affected),
        "affected": affected,
        "currently": current,
        "summary": f"Over {period.as_dict()['since'][:10]} – {period.as_dict()['until'][:10]} in "
        f"{period.environment.slug}, this rule would have {verb} {total} time(s), {len(affected)} "
        f"person(s); the rules in force did {current} time(s).",
    }


def simulate_rate_limit(period: Period, *, rate_class: str, limit: int, role: str = "") -> dict[str, Any]:
    rows = RequestLog.objects.filter(
        environment_id=period.environment.pk,
        occurred_at__gte=period.since,
        occurred_at__lt=period.until,
        rate_class=rate_class,
    )
    if role:
        rows = rows.filter(user_id__in=_role_members(role))
    over = (
        rows.exclude(status=429)
        .annotate(minute=Trunc("occurred_at", "minute"))
        .values("token_id", "user_id", "username", "minute")
        .annotate(n=Count("id"))
        .filter(n__gt=limit)
        .order_by()
    )
    counts: Counter = Counter()
    for row in over:
        counts[row["username"] or "(not signed in)"] += row["n"] - limit
    current = rows.filter(code="rate_limited").count()
    rule = {"rate_class": rate_class, "limit": limit, "window_seconds": 60, "role": role}
    return _result(RATE_LIMIT, rule, period, counts, current)


def simulate_quota(period: Period, *, action: str, limit: int, period_kind: str, role: str = "") -> dict[str, Any]:
    events = AuditEvent.objects.filter(
        environment=period.environment,
        occurred_at__gte=period.since,
        occurred_at__lt=period.until,
        action=action,
        outcome=Outcome.ALLOWED,
        actor_user__isnull=False,
    )
    if role:
        events = events.filter(actor_user__in=_role_members(role))
    over = (
        events.annotate(bucket=Trunc("occurred_at", period_kind))
        .values("actor_user", "actor_label", "bucket")
        .annotate(n=Count("id"))
        .filter(n__gt=limit)
        .order_by()
    )
    counts: Counter = Counter()
    for row in over:
        counts[row["actor_label"]] += row["n"] - limit
    current = RequestLog.objects.filter(
        environment_id=period.environment.pk,
        occurred_at__gte=period.since,
        occurred_at__lt=period.until,
        code="quota_exceeded",
    ).count()
    rule = {"action": action, "limit": limit, "period": period_kind, "role": role}
    return _result(QUOTA, rule, period, counts, current)


def _metric_of(changes: Any, metric: str) -> float | None:
    if not isinstance(changes, dict):
        return None
    for value in (
        changes.get(f"{metric}_at_request"),
        changes.get(metric),
        ((changes.get("change") or {}).get("context") or {}).get(metric)
        if isinstance(changes.get("change"), dict)
        else None,
    ):
        if isinstance(value, int | float):
            return float(value)
    return None


def simulate_approval_policy(
    period: Period, *, action: str, steps: list[list[str]], metric: str = "", threshold: int | None = None
) -> dict[str, Any]:
    events = AuditEvent.objects.filter(
        environment=period.environment,
        occurred_at__gte=period.since,
        occurred_at__lt=period.until,
        action=action,
        outcome__in=(Outcome.ALLOWED, Outcome.APPROVAL_REQUESTED),
        actor_user__isnull=False,
    ).exclude(door="task")
    counts: Counter = Counter()
    if not period.environment.is_sandbox:
        if metric and threshold is not None:
            for label, changes in events.values_list("actor_label", "changes"):
                value = _metric_of(changes, metric)
                if value is not None and value > threshold:
                    counts[label] += 1
        else:
            for row in events.values("actor_label").annotate(n=Count("id")).order_by():
                counts[row["actor_label"]] += row["n"]
    current = events.filter(outcome=Outcome.APPROVAL_REQUESTED).count()
    rule = {"action": action, "metric": metric, "threshold": threshold, "steps": steps, "approvals": len(steps)}
    return _result(APPROVAL_POLICY, rule, period, counts, current)


def simulate(period: Period, rule: dict[str, Any]) -> dict[str, Any]:
    """`rule` as validated by the API's serializer (or an admin form): its `kind` and fields."""
    kind = rule["kind"]
    if kind == RATE_LIMIT:
        return simulate_rate_limit(
            period, rate_class=rule["rate_class"], limit=rule["limit"], role=rule.get("role", "")
        )
    if kind == QUOTA:
        return simulate_quota(
            period,
            action=rule["action"],
            limit=rule["limit"],
            period_kind=rule.get("period") or "month",
            role=rule.get("role", ""),
        )
    return simulate_approval_policy(
        period,
        action=rule["action"],
        steps=rule.get("steps") or [],
        metric=rule.get("metric") or "",
        threshold=rule.get("threshold"),
    )
