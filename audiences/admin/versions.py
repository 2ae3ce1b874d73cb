"""Admin pages for audience versions: read-only.

A version is an immutable snapshot (rules, counts, members) made by publish or rollback
(audiences/publishing/): nothing about it is added, changed or deleted by hand, so these
pages only show it. Whoever may see audiences may see their versions (as in the API's
`GET /audiences/{id}/versions`); the members themselves are read through the API's
memberships pages, masked per role.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from audiences.models import AudienceVersion
from marketerapi.admin.mixins import ReadOnlyAdminMixin

VIEW_AUDIENCES = "audiences.view_audience"


def _json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(AudienceVersion)
class AudienceVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "environment",
        "state",
        "is_live",
        "channel",
        "matching",
        "members",
        "added",
        "removed",
        "members_retained",
        "created_by",
        "created_at",
        "built_at",
    ]
    list_display_links = ["__str__"]
    list_filter = ["state", "channel", "members_retained", "audience__environment", "created_at"]
    search_fields = ["audience__name", "=job__id", "error"]
    search_help_text = "Part of the audience's name or of a failed build's error, or a publish job's exact id."
    list_select_related = ["audience", "audience__environment", "created_by"]
    ordering = ["-created_at", "-id"]
    show_full_result_count = False
    fields = (
        "audience_link",
        "number",
        "state",
        "is_live",
        "channel",
        "matching",
        "members",
        "added",
        "removed",
        "waterfall_pretty",
        "rules_pretty",
        "members_retained",
        "rebuilt_from",
        "job",
        "created_by",
        "created_at",
        "built_at",
        "error",
    )
    readonly_fields = fields

    # --- read-only -----------------------------------------------------------------------

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(VIEW_AUDIENCES) or super().has_view_permission(request, obj)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request) or super().has_module_permission(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[AudienceVersion]:
        return super().get_queryset(request).select_related("audience", "audience__environment", "created_by")

    # --- columns ---------------------------------------------------------------------------

    @admin.display(description="environment", ordering="audience__environment__slug")
    def environment(self, obj: AudienceVersion) -> str:
        return obj.audience.environment.slug

    @admin.display(description="audience", ordering="audience__name")
    def audience_link(self, obj: AudienceVersion) -> str:
        audience = obj.audience
        url = reverse("admin:audiences_audience_change", args=[audience.pk])
        return format_html('<a href="{}">{}</a> ({})', url, audience.name, audience.environment.slug)

    @admin.display(description="live", boolean=True)
    def is_live(self, obj: AudienceVersion) -> bool:
        return obj.audience.live_version_id == obj.pk

    @admin.display(description="waterfall")
    def waterfall_pretty(self, obj: AudienceVersion) -> str:
        return _json(obj.waterfall)

    @admin.display(description="rules")
    def rules_pretty(self, obj: AudienceVersion) -> str:
        return _json(obj.rules)
