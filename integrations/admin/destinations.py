"""Admin pages for destinations: their health and circuit breaker, a "test connection"
action, a breaker reset, switching on and off, and the pushes waiting for them.

Nothing here writes by itself: the actions call integrations/destinations/services.py
with the signed-in user as actor through the admin door, so the policy engine and the
audit trail see them like any other change. Destinations are created and edited through the API
(adapter validation, credentials shown never); the admin never shows credentials.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from governance.actors import Actor
from integrations.destinations import credentials as credentials_store
from integrations.destinations import selectors, services
from integrations.models import Destination, DestinationPush
from marketerapi.admin.large_tables import LargeTableMixin
from marketerapi.admin.mixins import ReadOnlyAdminMixin, for_each
from marketerapi.problems import ApplicationError

_BADGE = {"ok": "#2e7d32", "degraded": "#e65100", "failing": "#c62828", "unknown": "#616161", "inactive": "#616161"}


@admin.register(Destination)
class DestinationAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = [
        "name",
        "environment",
        "adapter",
        "is_active",
        "health",
        "breaker",
        "last_success_at",
        "short_error",
    ]
    list_filter = ["environment", "adapter", "is_active"]
    search_fields = ["name"]
    list_select_related = ["environment"]
    date_hierarchy = "created_at"
    readonly_fields = (
        "name",
        "environment",
        "adapter",
        "config",
        "credentials",
        "credentials_env",
        "is_active",
        "health",
        "breaker_detail",
        "last_success_at",
        "last_failure_at",
        "last_error",
        "created_by",
        "created_at",
    )
    fields = readonly_fields
    actions = ["test_connection", "reset_breaker", "switch_on", "switch_off"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("integrations.view_destination")

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.change_destination")

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        # The page's statuses in one go: one query for every row's queued pushes, instead
        # of one per row.
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)
        statuses = selectors.destination_statuses(rows)
        for dest in rows:
            dest._admin_status = statuses[dest.pk]  # type: ignore[attr-defined]
        return changelist

    def _status(self, obj: Destination) -> dict[str, Any]:
        cache = getattr(obj, "_admin_status", None)
        if cache is None:
            cache = selectors.destination_status(obj)
            obj._admin_status = cache  # type: ignore[attr-defined]
        return cache

    @admin.display(description="credentials")
    def credentials(self, obj: Destination) -> str:
        label = credentials_store.credentials_label(obj)
        return {"stored": "stored (encrypted)", "env": "from the environment", "none": "none"}[label]

    @admin.display(description="health")
    def health(self, obj: Destination) -> str:
        status = self._status(obj)
        return format_html(
            '<b style="color:{}">{}</b> <span title="{}">ⓘ</span>',
            _BADGE.get(status["status"], "#616161"),
            status["status"],
            status["explanation"],
        )

    @admin.display(description="breaker")
    def breaker(self, obj: Destination) -> str:
        return self._status(obj)["breaker"]["state"]

    @admin.display(description="circuit breaker")
    def breaker_detail(self, obj: Destination) -> str:
        b = self._status(obj)["breaker"]
        return (
            f"{b['state']} — {b['consecutive_failures']} consecutive failure(s) of {b['threshold']}; "
            f"last error: {b['last_error'] or '—'}; calls resume: {b['retry_at'] or '—'} ({b['store']} store)"
        )

    @admin.display(description="last error")
    def short_error(self, obj: Destination) -> str:
        return obj.last_error[:80]

    @admin.action(description="Test connection", permissions=["operate"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        def call(actor: Actor, dest: Destination) -> str:
            outcome = services.destination_test(actor=actor, destination=dest)
            if not outcome.ok:
                raise ApplicationError(f"test failed: {outcome.message}", hint=outcome.hint)
            extra = f"; {outcome.requeued} deferred push(es) retried now" if outcome.requeued else ""
            return f"{dest.name}: test passed in {outcome.latency_ms} ms{extra}."

        for_each(self, request, queryset.select_related("environment"), call)

    @admin.action(
        description="Reset the circuit breaker (close it, retry deferred pushes now)", permissions=["operate"]
    )
    def reset_breaker(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        def call(actor: Actor, dest: Destination) -> str:
            requeued = services.destination_breaker_reset(actor=actor, destination=dest)
            return f"{dest.name}: breaker closed; {requeued} deferred push(es) retried now."

        for_each(self, request, queryset.select_related("environment"), call)

    @admin.action(description="Switch on", permissions=["operate"])
    def switch_on(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        def call(actor: Actor, dest: Destination) -> str:
            services.destination_update(actor=actor, destination=dest, is_active=True)
            return f"{dest.name}: switched on; its waiting pushes are sent now."

        for_each(self, request, queryset.select_related("environment"), call)

    @admin.action(description="Switch off (hold its pushes)", permissions=["operate"])
    def switch_off(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        def call(actor: Actor, dest: Destination) -> str:
            services.destination_update(actor=actor, destination=dest, is_active=False)
            return f"{dest.name}: switched off; its pushes wait until it is on again."

        for_each(self, request, queryset.select_related("environment"), call)


class PushKindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("members", "members added/removed"), ("send", "send batch")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(kind=self.value()) if self.value() else queryset


@admin.register(DestinationPush)
class DestinationPushAdmin(ReadOnlyAdminMixin, LargeTableMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "destination",
        "kind",
        "state",
        "size",
        "attempts",
        "next_attempt_at",
        "job",
        "short_error",
        "created_at",
    ]
    list_filter = ["state", PushKindFilter, "destination__environment", "destination"]
    search_fields = ["=id", "=job__id", "destination__name"]
    search_help_text = "An exact push or job id, or part of the destination's name."
    list_select_related = ["destination", "destination__environment", "job"]
    date_hierarchy = "created_at"
    readonly_fields = (
        "destination",
        "job",
        "kind",
        "state",
        "size",
        "progress",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "done_at",
    )
    fields = readonly_fields
    actions = ["retry_now"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("integrations.view_destination")

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.change_destination")

    @admin.display(description="size")
    def size(self, push: DestinationPush) -> str:
        payload = push.payload or {}
        if push.kind == "send":
            return f"{len((payload.get('batch') or {}).get('recipients') or []):,} recipient(s)"
        return f"{len(payload.get('added') or []):,} added, {len(payload.get('removed') or []):,} removed"

    @admin.display(description="progress")
    def progress(self, push: DestinationPush) -> str:
        done = (push.payload or {}).get("progress") or {}
        return ", ".join(f"{phase}: {count:,}" for phase, count in done.items()) or "—"

    @admin.display(description="last error")
    def short_error(self, push: DestinationPush) -> str:
        return push.last_error[:80]

    @admin.action(description="Retry now", permissions=["operate"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[DestinationPush]) -> None:
        def call(actor: Actor, push: DestinationPush) -> str:
            moved = services.push_retry_now(actor=actor, push=push)
            return f"Push {push.pk}: {'due now' if moved else 'not pending or deferred; nothing to retry'}."

        pushes = list(queryset.select_related("destination", "destination__environment"))
        for_each(self, request, pushes, call, environment_of=lambda p: p.destination.environment)
