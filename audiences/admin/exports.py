"""Admin pages for exports: read-only.

An export is requested through its service (`POST /api/v1/exports/`, audited, with its
quota and approvals) and written by its job; the admin shows what was exported, by whom,
with or without PII, and when its file expires. The file itself is downloaded only by the
person who ran the export, through a signed link (docs/exports.md).
"""

from __future__ import annotations

from django.contrib import admin

from audiences.models import Export
from marketerapi.admin.mixins import ReadOnlyAdminMixin


@admin.register(Export)
class ExportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "environment",
        "audience",
        "pii",
        "state",
        "rows",
        "size",
        "created_by",
        "created_at",
        "expires_at",
    ]
    list_filter = ["state", "pii", "format", "environment", "created_at"]
    search_fields = ["audience__name", "created_by__username", "=job__id", "error"]
    search_help_text = "Part of the audience's name, the username of who ran it, or the job's exact id."
    list_select_related = ["environment", "audience", "created_by"]
    ordering = ["-id"]
    show_full_result_count = False
    fields = (
        "environment",
        "audience",
        "version",
        "format",
        "fields",
        "pii",
        "state",
        "job",
        "rows",
        "size",
        "file_name",
        "error",
        "created_by",
        "created_at",
        "finished_at",
        "expires_at",
        "deleted_at",
    )
