"""Admin pages for the outbox: the domain events, read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from integrations import admin_webhooks  # noqa: F401  (webhooks, deliveries, dead letters)
from integrations.models import OutboxEvent
from integrations.outbox import EVENT_TYPES


class EventTypeFilter(admin.SimpleListFilter):
    """The known event types, without a DISTINCT over the whole outbox."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(t, t) for t in sorted(EVENT_TYPES)]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(type=self.value()) if self.value() else queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ["type", "environment", "aggregate_type", "aggregate_id", "occurred_at", "dispatched_at", "attempts"]
    list_filter = ["environment", EventTypeFilter, ("dispatched_at", admin.EmptyFieldListFilter)]
    search_fields = ["=aggregate_id", "=event_id"]
    search_help_text = "An exact aggregate id or event uuid."
    list_select_related = ["environment"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


from integrations import admin_destinations  # noqa: E402, F401  (registers the destination admin pages)
