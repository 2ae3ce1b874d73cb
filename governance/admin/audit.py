"""The audit trail in the admin: append-only, so read and filtered, nothing else."""

from __future__ import annotations

from django.contrib import admin

from governance.models import AuditEvent
from marketerapi.admin.large_tables import IndexedValuesFilter, LargeTableMixin
from marketerapi.admin.mixins import ReadOnlyAdminMixin


class AuditActionFilter(IndexedValuesFilter):
    """The actions present in the trail, read from the `action` index one value at a time
    (a SELECT DISTINCT would read every event)."""

    title = "action"
    parameter_name = "action"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, LargeTableMixin, admin.ModelAdmin):  # type: ignore[misc]  # LargeTableMixin's template is a plain str; Django's stubs allow more
    list_display = [
        "occurred_at",
        "environment",
        "actor_label",
        "door",
        "action",
        "target_label",
        "outcome",
        "request_id",
    ]
    list_filter = ["environment", AuditActionFilter, "outcome", "door"]
    search_fields = ["=request_id", "=actor_label", "=target_id"]
    search_help_text = "An exact request id, actor or target id."
    list_select_related = ["environment"]
    date_hierarchy = "occurred_at"
