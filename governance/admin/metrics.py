"""Admin pages of the request log (read-only) and the metrics reports: adoption and policy
feedback, with server-rendered SVG charts (governance/metrics/charts.py). The reports are
the same selectors as GET /api/v1/metrics/adoption and /metrics/policy, for the
environment the person acts in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from governance.metrics import charts, selectors
from governance.models import RequestLog
from marketerapi.admin.large_tables import LargeTableMixin
from marketerapi.admin.mixins import ReadOnlyAdminMixin
from marketerapi.admin.site import admin_actor
from marketerapi.problems import ApplicationError


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyAdminMixin, LargeTableMixin, admin.ModelAdmin):  # type: ignore[misc]  # as AuditEventAdmin
    """Every API request and portal page for REQUEST_LOG_RETENTION_DAYS; the reports are linked above the list."""

    list_display = ["occurred_at", "username", "door", "method", "route", "status", "code", "latency_ms", "request_id"]
    list_filter = ["door", "status"]
    search_fields = ["=request_id", "=username", "=route", "=code"]
    search_help_text = "An exact request id, username, route name or problem code."
    date_hierarchy = "occurred_at"

    def get_urls(self) -> list[URLPattern]:
        own = [
            path("adoption/", self.admin_site.admin_view(self._report(adoption=True)), name="metrics-adoption"),
            path("policy/", self.admin_site.admin_view(self._report(adoption=False)), name="metrics-policy"),
        ]
        return own + super().get_urls()

    def _report(self, *, adoption: bool) -> Callable[[HttpRequest], HttpResponse]:
        def view(request: HttpRequest) -> HttpResponse:
            actor = admin_actor(request)
            params = {k: v for k, v in request.GET.items() if k in ("since", "until") and v}
            context: dict[str, Any] = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Adoption" if adoption else "Policy feedback",
                "adoption": adoption,
                "params": params,
            }
            try:
                if adoption:
                    report = selectors.adoption_metrics(actor=actor, params=params)
                    context["charts"] = charts.adoption_charts(report)
                else:
                    report = selectors.policy_metrics(actor=actor, params=params)
                    context["charts"] = charts.policy_charts(report)
                context["report"] = report
            except ApplicationError as error:
                context["problem"] = error
            status = context["problem"].status if "problem" in context else 200
            return TemplateResponse(request, "admin/marketerapi/metrics_report.html", context, status=status)

        return view
