"""The outbox admin: every app's domain events with their dispatch state, read-only (the
services write them; the relay marks them dispatched)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from governance.models import OutboxEvent
from governance.outbox import EVENT_TYPES
from marketerapi.admin.large_tables import LargeTableMixin
from marketerapi.admin.mixins import ReadOnlyAdminMixin


class EventIdSearchMixin:
    """Searches accept an event's public id (evt_<hex>, as webhooks and the API show it): it is its uuid."""

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        return super().get_search_results(  # type: ignore[misc]
            request, queryset, search_term.strip().removeprefix("evt_")
        )


class EventTypeFilter(admin.SimpleListFilter):
    """The known event types (governance.outbox.EVENT_TYPES), without a DISTINCT over the
    outbox. `field` names the event's type from the listed model."""

    title = "type"
    parameter_name = "type"
    field = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(t, t) for t in sorted(EVENT_TYPES)]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(EventIdSearchMixin, ReadOnlyAdminMixin, LargeTableMixin, admin.ModelAdmin):
    list_display = ["type", "environment", "aggregate_type", "aggregate_id", "occurred_at", "dispatched_at", "attempts"]
    list_filter = ["environment", EventTypeFilter, ("dispatched_at", admin.EmptyFieldListFilter)]
    search_fields = ["=aggregate_id", "=event_id"]
    search_help_text = "An exact aggregate id, or an event's uuid or public id (evt_…)."
    list_select_related = ["environment"]
    date_hierarchy = "occurred_at"
