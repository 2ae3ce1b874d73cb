"""The policy feedback loop: which rate limits, quotas, denials and approval policies fired
most in a period, for whom, and where a limit routinely gets in the way of legitimate work.

A limit is suggested for review when, in the period, at least SUGGEST_MIN_HITS of its hits
were followed within 30 minutes by a success of the same person on the same route (the
work was legitimate: it went through once the limit let it), by at least
SUGGEST_MIN_PEOPLE different people (not one script misbehaving).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, OuterRef

from governance.metrics.adoption import SELF_RESOLVE_WINDOW
from governance.metrics.period import Period
from governance.models import AuditEvent, Outcome, RequestLog

RATE_LIMITED, QUOTA_EXCEEDED = "rate_limited", "quota_exceeded"
TOP_PEOPLE = 5


def _min_hits() -> int:
    return int(getattr(settings, "POLICY_SUGGEST_MIN_HITS", 10))


def _min_people() -> int:
    return int(getattr(settings, "POLICY_SUGGEST_MIN_PEOPLE", 3))


def _limit_hits(period: Period) -> list[dict[str, Any]]:
    """Rate-limit and quota refusals per class or route: hits, people, and how many of them
    the same person got through within 30 minutes."""
    later_success = RequestLog.objects.filter(
        environment_id=period.environment.pk,
        user_id=OuterRef("user_id"),
        route=OuterRef("route"),
        status__lt=400,
        occurred_at__gt=OuterRef("occurred_at"),
        occurred_at__lte=OuterRef("occurred_at") + SELF_RESOLVE_WINDOW,
    )
    succeeded = Exists(later_success)
    queryset: Any = (
        RequestLog.objects.filter(
            environment_id=period.environment.pk,
            occurred_at__gte=period.since,
            occurred_at__lt=period.until,
            code__in=(RATE_LIMITED, QUOTA_EXCEEDED),
        )
        .values("code", "rate_class", "route")
        .annotate(
            hits=Count("id"),
            people=Count("user_id", distinct=True),
            then_succeeded=Count("id", filter=succeeded),
            people_then_succeeded=Count("user_id", filter=succeeded, distinct=True),
        )
        .order_by("-hits", "code", "route")
    )
    return list(queryset)


def _limit_people(period: Period) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    rows = (
        RequestLog.objects.filter(
            environment_id=period.environment.pk,
            occurred_at__gte=period.since,
            occurred_at__lt=period.until,
            code__in=(RATE_LIMITED, QUOTA_EXCEEDED),
        )
        .values("code", "rate_class", "route", "username")
        .annotate(hits=Count("id"))
        .order_by("-hits", "username")
    )
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        top = out.setdefault((row["code"], row["rate_class"], row["route"]), [])
        if len(top) < TOP_PEOPLE:
            top.append({"username": row["username"] or "(not signed in)", "hits": row["hits"]})
    return out


def _audit_fired(period: Period, outcome: str) -> list[dict[str, Any]]:
    events = AuditEvent.objects.filter(
        environment=period.environment,
        occurred_at__gte=period.since,
        occurred_at__lt=period.until,
        outcome=outcome,
    )
    totals = list(
        events.values("action")
        .annotate(hits=Count("id"), people=Count("actor_user", distinct=True))
        .order_by("-hits", "action")
    )
    people: dict[str, list[dict[str, Any]]] = {}
    for row in events.values("action", "actor_label").annotate(hits=Count("id")).order_by("-hits", "actor_label"):
        top = people.setdefault(row["action"], [])
        if len(top) < TOP_PEOPLE:
            top.append({"username": row["actor_label"], "hits": row["hits"]})
    return [{**row, "top": people.get(row["action"], [])} for row in totals]


def _suggestion(row: dict[str, Any]) -> str:
    if row["code"] == RATE_LIMITED:
        what = f"The {row['rate_class'] or 'unknown'} rate limit"
        fix = (
            "consider raising it for their role or their tokens (a token's rate_limits), or batching the calls "
            "(the bulk endpoints)"
        )
    else:
        what = f"A quota on {row['route'] or 'an unknown route'}"
        fix = "consider raising the quota for their role in the admin (simulate the new limit first)"
    return (
        f"{what} stopped {row['then_succeeded']} requests of {row['people_then_succeeded']} people who got the same "
        f"request through within 30 minutes: the limit gets in the way of legitimate work; {fix}."
    )


def policy_report(period: Period) -> dict[str, Any]:
    hits = _limit_hits(period)
    people = _limit_people(period)
    rate_limits, quotas, suggestions = [], [], []
    for row in hits:
        key = (row["code"], row["rate_class"], row["route"])
        entry = {
            "hits": row["hits"],
            "people": row["people"],
            "then_succeeded": row["then_succeeded"],
            "people_then_succeeded": row["people_then_succeeded"],
            "top": people.get(key, []),
        }
        if row["code"] == RATE_LIMITED:
            rate_limits.append({"rate_class": row["rate_class"], "route": row["route"], **entry})
        else:
            quotas.append({"route": row["route"], **entry})
        if row["then_succeeded"] >= _min_hits() and row["people_then_succeeded"] >= _min_people():
            suggestions.append(
                {
                    "kind": "rate_limit" if row["code"] == RATE_LIMITED else "quota",
                    "rate_class": row["rate_class"],
                    "route": row["route"],
                    "hits": row["then_succeeded"],
                    "people": row["people_then_succeeded"],
                    "suggestion": _suggestion(row),
                }
            )
    return {
        "period": period.as_dict(),
        "rule": {"min_hits": _min_hits(), "min_people": _min_people(), "window_minutes": 30},
        "rate_limits": rate_limits,
        "quotas": quotas,
        "denials": _audit_fired(period, Outcome.DENIED),
        "approvals": _audit_fired(period, Outcome.APPROVAL_REQUESTED),
        "suggestions": suggestions,
    }
