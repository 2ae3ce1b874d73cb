"""Prometheus `/metrics`: django-prometheus's request and database metrics, plus ours,
computed from the database at scrape time (so every web process answers the same):

- marketerapi_jobs{kind,state}; marketerapi_job_duration_seconds{kind,stat="avg|max"}
  of the jobs finished in the last hour;
- marketerapi_outbox_pending, marketerapi_outbox_lag_seconds (age of the oldest event not
  yet relayed);
- marketerapi_webhook_deliveries{state} (pending, dead), marketerapi_dead_letters_open{kind},
  marketerapi_destination_pushes{state} (deferred, failed: the review queue);
- marketerapi_destination_breaker_open{environment,destination} (1 open or half-open);
- marketerapi_rate_limited_requests{rate_class} in the last 5 minutes (the request log);
- marketerapi_approvals_pending{environment}.

Refused (403 problem+json) unless the caller's address is in METRICS_ALLOWED_NETWORKS or it
sends `Authorization: Bearer <METRICS_TOKEN>`; with neither set, nobody may scrape.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from marketerapi.problems import PROBLEM_CONTENT_TYPE, ApplicationError

logger = logging.getLogger("integrations.prometheus")
RECENT = timedelta(minutes=5)


class MetricsForbidden(ApplicationError):
    status = 403
    code = "metrics_forbidden"
    title = "Metrics are for the monitoring system"
    hint = (
        "Scrape from an address in METRICS_ALLOWED_NETWORKS, or send Authorization: Bearer <METRICS_TOKEN> "
        "(docs/operations.md, Metrics)."
    )


def may_scrape(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if token and sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].encode(), token.encode()):
        return True
    networks = settings.METRICS_ALLOWED_NETWORKS
    if not networks:
        return False
    from governance.actors import client_ip

    address = client_ip(request)
    if not address:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not may_scrape(request):
        error = MetricsForbidden("This address and token may not read the metrics.")
        return JsonResponse(error.as_problem(), status=403, content_type=PROBLEM_CONTENT_TYPE)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


class MarketerCollector:
    """Our gauges, read at each scrape: a handful of GROUP BY queries."""

    def describe(self) -> list[GaugeMetricFamily]:
        # Registering asks for the metric names; answering nothing keeps the database out of
        # process start-up (the registry then reads them at the first scrape).
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._collect()
        except Exception:  # a scrape must answer even when the database does not
            logger.exception("metrics: the database could not be read")

    def _collect(self) -> Iterator[GaugeMetricFamily]:
        from governance.models import ApprovalRequest, ApprovalState, OutboxEvent, RequestLog
        from integrations.destinations.breakers import Breaker
        from integrations.models import DeadLetter, Destination, DestinationPush, Job, WebhookDelivery

        now = timezone.now()
        jobs = GaugeMetricFamily("marketerapi_jobs", "Jobs by kind and state.", labels=["kind", "state"])
        for row in _rows(Job.objects.values("kind", "state").annotate(n=Count("id")).order_by()):
            jobs.add_metric([row["kind"], row["state"]], row["n"])
        yield jobs

        durations: dict[str, list[float]] = {}
        finished = Job.objects.filter(finished_at__gte=now - timedelta(hours=1), started_at__isnull=False)
        for kind, started, ended in finished.values_list("kind", "started_at", "finished_at")[:10_000]:
            if started is not None and ended is not None:
                durations.setdefault(kind, []).append((ended - started).total_seconds())
        duration = GaugeMetricFamily(
            "marketerapi_job_duration_seconds",
            "Run time of the jobs finished in the last hour.",
            labels=["kind", "stat"],
        )
        for kind, values in durations.items():
            duration.add_metric([kind, "avg"], sum(values) / len(values))
            duration.add_metric([kind, "max"], max(values))
        yield duration

        pending = OutboxEvent.objects.filter(dispatched_at__isnull=True).aggregate(
            n=Count("id"), oldest=Min("occurred_at")
        )
        yield GaugeMetricFamily("marketerapi_outbox_pending", "Domain events not yet relayed.", value=pending["n"])
        oldest = pending["oldest"]
        lag = (now - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily("marketerapi_outbox_lag_seconds", "Age of the oldest event not yet relayed.", value=lag)

        deliveries = GaugeMetricFamily(
            "marketerapi_webhook_deliveries", "Webhook deliveries by state.", labels=["state"]
        )
        for row in _rows(
            WebhookDelivery.objects.filter(state__in=("pending", "dead"))
            .values("state")
            .annotate(n=Count("id"))
            .order_by()
        ):
            deliveries.add_metric([row["state"]], row["n"])
        yield deliveries

        letters = GaugeMetricFamily(
            "marketerapi_dead_letters_open", "Dead letters not yet replayed or discarded.", labels=["kind"]
        )
        for row in _rows(
            DeadLetter.objects.filter(resolved_at__isnull=True).values("kind").annotate(n=Count("id")).order_by()
        ):
            letters.add_metric([row["kind"]], row["n"])
        yield letters

        pushes = GaugeMetricFamily(
            "marketerapi_destination_pushes", "Destination pushes waiting (deferred) or failed.", labels=["state"]
        )
        for row in _rows(
            DestinationPush.objects.filter(state__in=("deferred", "failed"))
            .values("state")
            .annotate(n=Count("id"))
            .order_by()
        ):
            pushes.add_metric([row["state"]], row["n"])
        yield pushes

        breakers = GaugeMetricFamily(
            "marketerapi_destination_breaker_open",
            "1 when a destination's circuit breaker is open or half-open.",
            labels=["environment", "destination"],
        )
        for destination in Destination.objects.filter(is_active=True).select_related("environment")[:500]:
            state = Breaker.for_destination(destination).snapshot().state
            breakers.add_metric([destination.environment.slug, destination.name], 0 if state == "closed" else 1)
        yield breakers

        limited = GaugeMetricFamily(
            "marketerapi_rate_limited_requests",
            "429 rate_limited answers in the last 5 minutes.",
            labels=["rate_class"],
        )
        recent = RequestLog.objects.filter(occurred_at__gte=now - RECENT, code="rate_limited")
        for row in _rows(recent.values("rate_class").annotate(n=Count("id")).order_by()):
            limited.add_metric([row["rate_class"] or "unknown"], row["n"])
        yield limited

        approvals = GaugeMetricFamily(
            "marketerapi_approvals_pending", "Approval requests waiting for votes.", labels=["environment"]
        )
        waiting = ApprovalRequest.objects.filter(state=ApprovalState.PENDING)
        for row in _rows(waiting.values("environment__slug").annotate(n=Count("id")).order_by()):
            approvals.add_metric([row["environment__slug"]], row["n"])
        yield approvals


def _rows(queryset: Any) -> list[dict[str, Any]]:
    return list(queryset)


_registered = False


def register() -> None:
    """Add our collector to the default registry once per process (integrations' ready())."""
    global _registered
    if not _registered:
        REGISTRY.register(MarketerCollector())  # type: ignore[arg-type]
        _registered = True
