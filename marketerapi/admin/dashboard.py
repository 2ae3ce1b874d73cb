"""The dashboard on the admin index: what needs a platform engineer in the environment they
act in (docs/admin.md §1, "The dashboard").

Five panels, each shown to whoever may view the model behind it, each read through an index:

- pending approvals of every environment the person may act in (not only the one they act
  in: an approval waits wherever it was filed): the count of each and the oldest few, each
  labelled with its environment (`approval_env_state`: environment, state);
- dead letters: the open count and the newest few (`deadletter_open`: environment, resolved_at);
- open circuit breakers: the environment's destinations, then one breaker read each (Redis
  or in-process, no SQL);
- quota hot spots: the active quota policies, then the usage rows of this period above 80 %
  of the smallest limit of each quota name, with their users, tokens and roles. No index
  covers (quota, period_start, used) yet, so that one read scans the usage table (about
  100 ms per million rows on PostgreSQL; such an index brings it under 10 ms);
- recent failed jobs: the newest few (`job_env_state`: environment, state, id, backwards).

The number of queries is fixed whatever the size of the tables (tests/governance/
test_admin_dashboard.py counts them). Which quota policy applies to a usage row, and its
status, come from governance.limits.quotas (the same choice `/me/quotas` makes).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from governance.actors import Actor
from governance.approvals.selectors import acting_environments
from governance.limits import quotas
from governance.models import ApiToken, ApprovalRequest, ApprovalState, Environment, QuotaPolicy, QuotaUsage
from marketerapi.admin.site import admin_actor

# How many rows each panel lists.
PANEL_ROWS = 5
# At most this many usage rows above the cheapest threshold are weighed per page view.
HOT_SPOT_CANDIDATES = 500


@dataclass
class Row:
    label: str
    url: str = ""
    detail: str = ""
    when: datetime | None = None
    level: str = ""  # "", "warning" or "error": how the row is highlighted


@dataclass
class Panel:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    count: int | None = None
    capped: bool = False  # there are more than `count`
    count_label: str = ""
    more_url: str = ""
    more_label: str = ""
    empty: str = "Nothing here."
    note: str = ""  # a line under the title (e.g. the count of each environment)


def _changelist(model: Any, **params: Any) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def _change(obj: Any) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def _may_view(request: HttpRequest, model: Any) -> bool:
    return bool(request.user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}"))


# --- the panels ------------------------------------------------------------------------------


def _expiry_level(expires_at: datetime, now: datetime) -> str:
    """Red once a request is past its expiry (the sweep closes it soon), orange in its last 6 hours."""
    if expires_at <= now:
        return "error"
    return "warning" if (expires_at - now).total_seconds() < 6 * 3600 else ""


def approvals_panel(environments: list[Environment], now: datetime) -> Panel:
    """What waits for votes in every environment the person may act in (not only the one the
    admin acts in): the count of each, and the oldest requests, each labelled with its own."""
    pending = ApprovalRequest.objects.filter(environment__in=environments, state=ApprovalState.PENDING)
    counts = dict(pending.order_by().values_list("environment_id").annotate(n=Count("id")))
    oldest = (
        pending.select_related("requester", "environment")
        .defer("change", "policy", "result")
        .annotate(approvals=Count("votes", filter=Q(votes__decision="approve", votes__counts=True)))
        .order_by("created_at", "id")[:PANEL_ROWS]
    )
    rows = [
        Row(
            label=f"[{r.environment.slug}] #{r.pk} {r.summary}",
            url=_change(r),
            detail=f"{r.environment.slug} · {r.action} · by {r.requester.get_username()} · "
            f"{min(r.approvals, r.required)} of {r.required} approval(s)" + (" · stale" if r.is_stale else ""),
            when=r.created_at,
            level=_expiry_level(r.expires_at, now),
        )
        for r in oldest
    ]
    return Panel(
        key="approvals",
        title="Pending approvals",
        rows=rows,
        count=sum(counts.values()),
        count_label="waiting for votes",
        note="In every environment: "
        + ", ".join(f"{environment.slug} {counts.get(environment.pk, 0)}" for environment in environments)
        + ". Each request is voted on in its own environment.",
        more_url=_changelist(ApprovalRequest, state__exact="pending"),
        more_label="All pending requests",
        empty="No request is waiting for a vote in any environment.",
    )


def dead_letters_panel(environment: Environment) -> Panel:
    from integrations.models import DeadLetter

    open_letters = DeadLetter.objects.filter(environment=environment, resolved_at__isnull=True)
    count = open_letters.count()
    newest = open_letters.defer("payload").order_by("-id")[:PANEL_ROWS]
    rows = [
        Row(
            label=f"{d.kind} {d.reference_id}",
            url=_change(d),
            detail=f"{d.attempts} attempt(s) · {d.last_error[:100] or 'no error recorded'}",
            when=d.created_at,
            level="error",
        )
        for d in newest
    ]
    return Panel(
        key="dead_letters",
        title="Dead letters",
        rows=rows,
        count=count,
        count_label="to replay or discard",
        more_url=_changelist(DeadLetter, environment__id__exact=environment.pk, resolved_at__isempty="1"),
        more_label="All open dead letters",
        empty="No work is waiting after its last retry.",
    )


def breakers_panel(environment: Environment) -> Panel:
    from integrations.destinations.selectors import breaker_of
    from integrations.models import Destination

    destinations = list(
        Destination.objects.filter(environment=environment)
        .only("id", "name", "adapter", "is_active", "environment_id")
        .order_by("name")
    )
    tripped = []
    for destination in destinations:
        snap = breaker_of(destination).snapshot()
        if not snap.is_closed:
            tripped.append((destination, snap))
    rows = [
        Row(
            label=f"{d.name} ({d.adapter})",
            url=_change(d),
            detail=f"{s.state.replace('_', '-')} after {s.failures} consecutive failure(s)"
            + (f"; last error: {s.last_error[:100]}" if s.last_error else "")
            + (f"; calls resume {s.retry_at:%Y-%m-%d %H:%M} UTC" if s.retry_at and s.state == "open" else "")
            + ("" if d.is_active else "; switched off"),
            level="error" if s.state == "open" else "warning",
        )
        for d, s in tripped[:PANEL_ROWS]
    ]
    return Panel(
        key="breakers",
        title="Open circuit breakers",
        rows=rows,
        count=len(tripped),
        count_label=f"of {len(destinations)} destination(s)",
        more_url=_changelist(Destination, environment__id__exact=environment.pk),
        more_label="All destinations",
        empty="Every destination's breaker is closed.",
    )


@dataclass(frozen=True)
class HotSpot:
    status: quotas.QuotaStatus
    policy: QuotaPolicy
    who: str
    usage: QuotaUsage


def _parse_subject(subject: str) -> tuple[str, int, int | None] | None:
    """ "user:5" → ("user", 5, None); "token:7@env2" → ("token", 7, 2); None if malformed."""
    who, _, env = subject.partition("@env")
    kind, _, ident = who.partition(":")
    if kind not in ("user", "token") or not ident.isdigit() or (env and not env.isdigit()):
        return None
    return kind, int(ident), int(env) if env else None


def quota_hot_spots(environment: Environment, now: datetime | None = None) -> tuple[list[HotSpot], bool]:
    """Usage rows of this period at or past quotas.WARNING_PERCENT of the limit of the policy
    that counts into them, fullest first; the flag says whether more candidates were left
    unweighed (HOT_SPOT_CANDIDATES). Rows of every environment's policies and of this
    environment's own are considered; another environment's own rows are not."""
    from governance.approvals.selectors import roles_by_user

    now = now or timezone.now()
    policies = list(
        QuotaPolicy.objects.filter(is_active=True).filter(Q(environment__isnull=True) | Q(environment=environment))
    )
    by_name: dict[str, list[QuotaPolicy]] = defaultdict(list)
    for policy in policies:
        by_name[policy.name].append(policy)
    where = Q()
    for name, group in by_name.items():
        starts = {quotas.period_bounds(p.period, now)[0] for p in group}
        floor = max(1, math.ceil(min(p.limit for p in group) * quotas.WARNING_PERCENT / 100))
        where |= Q(quota=name, period_start__in=sorted(starts), used__gte=floor)
    if not by_name:
        return [], False
    own = f"@env{environment.pk}"
    candidates = list(
        QuotaUsage.objects.filter(where)
        .filter(~Q(subject__contains="@env") | Q(subject__endswith=own))
        .order_by("-used", "id")[:HOT_SPOT_CANDIDATES]
    )
    parsed = {row.pk: _parse_subject(row.subject) for row in candidates}
    user_ids = {p[1] for p in parsed.values() if p is not None and p[0] == "user"}
    token_ids = {p[1] for p in parsed.values() if p is not None and p[0] == "token"}
    users = {u.pk: u for u in User.objects.filter(pk__in=user_ids).only("id", "username")} if user_ids else {}
    tokens = (
        {t.pk: t for t in ApiToken.objects.filter(pk__in=token_ids).select_related("user", "environment")}
        if token_ids
        else {}
    )
    roles = roles_by_user(user_ids | {t.user_id for t in tokens.values()})

    spots = []
    for row in candidates:
        subject = parsed[row.pk]
        if subject is None:
            continue
        kind, ident, env_id = subject
        token = tokens.get(ident) if kind == "token" else None
        user = token.user if token is not None else users.get(ident) if kind == "user" else None
        if user is None:
            continue
        actor = Actor(
            user=user,
            environment=token.environment if token is not None else environment,
            token=token,
            _roles=sorted(roles.get(user.pk, set())),
        )
        # The policy that counts into this row: for a row of one environment, that
        # environment's or everyone's; for a row of every environment, everyone's only.
        applicable = [p for p in by_name[row.quota] if p.environment_id in (None, env_id)]
        chosen = quotas.choose(applicable, actor).get(row.quota)
        if chosen is None or chosen.environment_id != env_id:
            continue
        status = quotas.status_of(chosen, actor, row.used, now)
        if status.subject != row.subject or status.period_start != row.period_start or not status.is_warning:
            continue
        who = f"token {token.prefix}… ({user.get_username()})" if token is not None else user.get_username()
        spots.append(HotSpot(status, chosen, who, row))
    spots.sort(key=lambda s: (-s.status.percent, s.usage.pk))
    return spots, len(candidates) >= HOT_SPOT_CANDIDATES


def quotas_panel(environment: Environment, now: datetime) -> Panel:
    spots, capped = quota_hot_spots(environment, now)
    rows = [
        Row(
            label=f"{s.status.name}: {s.who}",
            url=_changelist(QuotaUsage, quota=s.usage.quota, subject=s.usage.subject),
            detail=f"{s.status.used} of {s.status.limit} per {s.status.period} ({s.status.percent:g} %) · "
            f"limit from {s.status.source} · resets {s.status.resets_at:%Y-%m-%d %H:%M} UTC",
            level="error" if s.status.percent >= 100 else "warning",
        )
        for s in spots[:PANEL_ROWS]
    ]
    return Panel(
        key="quotas",
        title="Quota hot spots",
        rows=rows,
        count=len(spots),
        capped=capped,
        count_label=f"past {quotas.WARNING_PERCENT:g} % of their limit",
        more_url=_changelist(QuotaPolicy),
        more_label="Quota policies",
        empty=f"Nobody is past {quotas.WARNING_PERCENT:g} % of a quota this period.",
    )


def failed_jobs_panel(environment: Environment) -> Panel:
    from integrations.models import Job, JobState

    failed = (
        Job.objects.filter(environment=environment, state=JobState.FAILED)
        .select_related("requested_by")
        .defer("params", "progress", "result", "warnings")
        .order_by("-id")[:PANEL_ROWS]
    )
    rows = []
    for job in failed:
        first_error = (job.errors or [{}])[0] if isinstance(job.errors, list) else {}
        message = first_error.get("message", "") if isinstance(first_error, dict) else str(first_error)
        who = job.requested_by.get_username() if job.requested_by else "the system"
        rows.append(
            Row(
                label=f"{job.kind} #{job.pk}",
                url=_change(job),
                detail=f"for {who}" + (f" · {message[:120]}" if message else ""),
                when=job.finished_at or job.created_at,
                level="error",
            )
        )
    return Panel(
        key="jobs",
        title="Recent failed jobs",
        rows=rows,
        more_url=_changelist(Job, environment__id__exact=environment.pk, state__exact="failed"),
        more_label="All failed jobs",
        empty="No job has failed.",
    )


def dashboard(request: HttpRequest, environment: Environment) -> dict[str, Any]:
    """The panels the signed-in person may see, for `environment`."""
    from integrations.models import DeadLetter, Destination, Job

    now = timezone.now()
    panels = []
    if _may_view(request, ApprovalRequest):
        # Approvals are judged in every environment the person may act in (the admin votes
        # on each in its own): the panel counts them all, not only `environment`'s.
        panels.append(approvals_panel(acting_environments(admin_actor(request, environment)), now))
    if _may_view(request, DeadLetter):
        panels.append(dead_letters_panel(environment))
    if _may_view(request, Destination):
        panels.append(breakers_panel(environment))
    if _may_view(request, QuotaUsage):
        panels.append(quotas_panel(environment, now))
    if _may_view(request, Job):
        panels.append(failed_jobs_panel(environment))
    return {
        "environment": environment,
        "panels": panels,
        "switch_url": _changelist(Environment),
        "generated_at": now,
    }
