"""The jobs admin, read-only: jobs are written by the services and workers only."""

from __future__ import annotations

from django.contrib import admin

from integrations.models import Job
from marketerapi.admin.large_tables import LargeTableMixin, RecentValuesFilter
from marketerapi.admin.mixins import ReadOnlyAdminMixin


class JobKindFilter(RecentValuesFilter):
    title = "kind"
    parameter_name = "kind"


@admin.register(Job)
class JobAdmin(ReadOnlyAdminMixin, LargeTableMixin, admin.ModelAdmin):
    """Publishes, exports, sends and destination pushes with their state, progress, warnings
    and errors (integrations/jobs/). The admin index lists the latest failed ones."""

    list_display = ["id", "kind", "environment", "state", "target", "requested_by", "progress_text", "short_error"]
    list_display_links = ["id", "kind"]
    list_filter = ["environment", "state", JobKindFilter]
    search_fields = ["=id", "=target_id"]
    search_help_text = "An exact job id or target id."
    list_select_related = ["environment", "requested_by"]
    date_hierarchy = "created_at"
    readonly_fields = (
        "kind",
        "environment",
        "state",
        "target_type",
        "target_id",
        "requested_by",
        "params",
        "progress",
        "result",
        "warnings",
        "errors",
        "attempts",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )
    fields = readonly_fields

    @admin.display(description="target")
    def target(self, job: Job) -> str:
        return f"{job.target_type} {job.target_id}" if job.target_type else "—"

    @admin.display(description="progress")
    def progress_text(self, job: Job) -> str:
        progress = job.progress if isinstance(job.progress, dict) else {}
        done, total = progress.get("done"), progress.get("total")
        if isinstance(done, int) and isinstance(total, int) and total > 0:
            return f"{done:,} of {total:,}"
        return "—"

    @admin.display(description="error")
    def short_error(self, job: Job) -> str:
        errors = job.errors if isinstance(job.errors, list) else []
        first = errors[0] if errors else None
        if isinstance(first, dict):
            return str(first.get("message") or first.get("code") or "")[:80]
        return str(first or "")[:80]
