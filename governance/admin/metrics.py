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


NOT_RESENT = ("csrfmiddlewaretoken", "_simulate")


class SimulateBeforeSaveMixin:
    """A "Simulate" button on a change page (quota and approval policies): the form's values
    are checked by the same form, replayed against the last 30 days
    (governance/metrics/simulation.py) and shown with a button that saves exactly them."""

    change_form_template = "admin/marketerapi/simulate_change_form.html"

    def simulation_rule(self, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta  # type: ignore[attr-defined]
        name = f"{opts.app_label}_{opts.model_name}_simulate"
        view = self.admin_site.admin_view(self.simulate_view)  # type: ignore[attr-defined]
        own = [path("simulate/", view, name=name), path("<path:object_id>/simulate/", view, name=f"{name}_change")]
        return own + super().get_urls()  # type: ignore[misc]

    def simulate_view(self, request: HttpRequest, object_id: str | None = None) -> HttpResponse:
        from django.contrib.admin.utils import unquote
        from django.core.exceptions import PermissionDenied
        from django.urls import reverse

        admin_self: Any = self
        obj = admin_self.get_object(request, unquote(object_id)) if object_id else None
        if request.method != "POST" or not admin_self.has_change_permission(request, obj):
            raise PermissionDenied
        form = admin_self.get_form(request, obj, change=obj is not None)(request.POST, instance=obj)
        opts = admin_self.model._meta
        back = (
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            if obj is not None
            else reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
        )
        context: dict[str, Any] = {
            **admin_self.admin_site.each_context(request),
            "opts": opts,
            "title": f"Simulate this {opts.verbose_name}",
            "save_url": back,
            "fields": [
                (k, v) for k, vs in request.POST.lists() for v in vs if k not in ("csrfmiddlewaretoken", "_simulate")
            ],
        }
        status = 200
        if form.is_valid():
            data = form.cleaned_data
            actor = admin_actor(request, data.get("environment"))
            try:
                context["result"] = selectors.policy_simulate(actor=actor, rule=self.simulation_rule(data), params={})
            except ApplicationError as error:
                context["problem"], status = error, error.status
        else:
            context["form_errors"], status = form.errors, 422
        return TemplateResponse(request, "admin/marketerapi/simulation.html", context, status=status)


def quota_rule(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "quota",
        "action": data["action"],
        "limit": data["limit"],
        "period": data["period"],
        "role": data.get("role") or "",
    }


def approval_rule(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "approval_policy",
        "action": data["action"],
        "metric": data.get("metric") or "",
        "threshold": data.get("threshold"),
        "steps": data.get("steps") or [],
    }
