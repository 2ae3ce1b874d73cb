"""Adoption metrics for one environment and period, from the audit trail and the request log.

- Workflows completed without engineering intervention: the first finish of a workflow's
  object in the period (with its start on record), and whether any admin-door action
  touched the same object between start and finish.
- Self-resolved errors: a 4xx on a workflow's routes followed, within 30 minutes, by a
  success on the same workflow's routes by the same person.
- Time to completion per workflow, approval lead time (filed → decided): median and p90.
- Doors: for each action, how often it came through the API and the portal against the admin.

Each figure is one SQL statement (subqueries and EXISTS for the per-row tests, GROUP BY for
counts); only the durations come back as rows, for their percentiles.
"""

from __future__ import annotations

from datetime import timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, Subquery

from governance.metrics.period import Period
from governance.metrics.stats import share, summary
from governance.metrics.workflows import WORKFLOWS, Workflow
from governance.models import ApprovalRequest, ApprovalState, AuditEvent, Door, Outcome, RequestLog

SELF_RESOLVE_WINDOW = timedelta(minutes=30)
DECIDED_STATES = (ApprovalState.APPROVED, ApprovalState.REJECTED, ApprovalState.EXECUTED, ApprovalState.FAILED)
DOORS = (Door.API, Door.PORTAL, Door.ADMIN)


def completions(period: Period, workflow: Workflow) -> list[tuple[Any, Any, bool]]:
    """(started, finished, intervened) of each object whose workflow finished (first time) in the period."""
    events = AuditEvent.objects.filter(
        environment=period.environment, target_type=workflow.target_type, outcome=Outcome.ALLOWED
    )
    same = {"target_id": OuterRef("target_id")}
    start = events.filter(action=workflow.start, **same).order_by("occurred_at").values("occurred_at")[:1]
    earlier_finish = events.filter(action=workflow.finish, id__lt=OuterRef("id"), **same)
    admin_touch = AuditEvent.objects.filter(
        environment=period.environment,
        target_type=workflow.target_type,
        door=Door.ADMIN,
        occurred_at__gte=OuterRef("started"),
        occurred_at__lte=OuterRef("occurred_at"),
        **same,
    )
    finishes = (
        events.filter(action=workflow.finish, occurred_at__gte=period.since, occurred_at__lt=period.until)
        .annotate(started=Subquery(start))
        .filter(started__isnull=False)
        .exclude(Exists(earlier_finish))
        .annotate(intervened=Exists(admin_touch))
        .order_by()
    )
    return list(finishes.values_list("started", "occurred_at", "intervened"))


def _routes(workflow: Workflow) -> Q:
    return reduce(or_, (Q(route__startswith=prefix) for prefix in workflow.route_prefixes))


def self_resolved(period: Period, workflow: Workflow) -> dict[str, int]:
    """4xx of signed-in people on the workflow's routes in the period, and how many were
    followed by a success of the same person on the same workflow within 30 minutes."""
    routes = _routes(workflow)
    later_success = RequestLog.objects.filter(
        routes,
        environment_id=period.environment.pk,
        user_id=OuterRef("user_id"),
        status__lt=400,
        occurred_at__gt=OuterRef("occurred_at"),
        occurred_at__lte=OuterRef("occurred_at") + SELF_RESOLVE_WINDOW,
    )
    counts = (
        RequestLog.objects.filter(
            routes,
            environment_id=period.environment.pk,
            occurred_at__gte=period.since,
            occurred_at__lt=period.until,
            status__gte=400,
            status__lt=500,
            user_id__isnull=False,
        )
        # The EXISTS goes straight into the FILTER clause: an annotation named there would be
        # dropped from the aggregate's subquery.
        .aggregate(errors=Count("id"), resolved=Count("id", filter=Exists(later_success)))
    )
    return {"errors_4xx": counts["errors"], "self_resolved": counts["resolved"]}


def approval_lead_times(period: Period) -> list[float]:
    rows = ApprovalRequest.objects.filter(
        environment=period.environment,
        decided_at__gte=period.since,
        decided_at__lt=period.until,
        state__in=DECIDED_STATES,
    ).values_list("created_at", "decided_at")
    return [(decided - created).total_seconds() for created, decided in rows if decided is not None]


def doors(period: Period) -> list[dict[str, Any]]:
    """Per action done by people: how many through the API, the portal and the admin."""
    counts = (
        AuditEvent.objects.filter(
            environment=period.environment,
            occurred_at__gte=period.since,
            occurred_at__lt=period.until,
            door__in=DOORS,
            actor_user__isnull=False,
            outcome__in=(Outcome.ALLOWED, Outcome.APPROVAL_REQUESTED),
        )
        .values("action", "door")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_action: dict[str, dict[str, Any]] = {}
    for row in counts:
        entry = by_action.setdefault(row["action"], {"action": row["action"], **{str(d): 0 for d in DOORS}})
        entry[row["door"]] = row["n"]
    out = []
    for entry in sorted(by_action.values(), key=lambda e: e["action"]):
        self_service = entry["api"] + entry["portal"]
        entry["self_service_share"] = share(self_service, self_service + entry["admin"])
        out.append(entry)
    return out


def adoption_report(period: Period) -> dict[str, Any]:
    workflows = []
    total_completed = total_clean = total_errors = total_resolved = 0
    for workflow in WORKFLOWS:
        done = completions(period, workflow)
        clean = sum(1 for _, _, intervened in done if not intervened)
        errors = self_resolved(period, workflow)
        total_completed += len(done)
        total_clean += clean
        total_errors += errors["errors_4xx"]
        total_resolved += errors["self_resolved"]
        workflows.append(
            {
                "workflow": workflow.name,
                "label": workflow.label,
                "completed": len(done),
                "without_intervention": clean,
                "share_without_intervention": share(clean, len(done)),
                "time_to_completion": summary([(end - start).total_seconds() for start, end, _ in done]),
                **errors,
                "self_resolved_share": share(errors["self_resolved"], errors["errors_4xx"]),
            }
        )
    return {
        "period": period.as_dict(),
        "completed_without_intervention": {
            "completed": total_completed,
            "without_intervention": total_clean,
            "share": share(total_clean, total_completed),
        },
        "self_resolved_errors": {
            "errors_4xx": total_errors,
            "self_resolved": total_resolved,
            "share": share(total_resolved, total_errors),
        },
        "workflows": workflows,
        "approval_lead_time": summary(approval_lead_times(period)),
        "doors": doors(period),
    }
