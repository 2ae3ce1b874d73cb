"""Admin pages of the catalogue: the custom attribute keys, event types and event properties
seen in each environment, as ingestion recorded them.

Read-only but for one field: `personal data` (pii), which an admin sets on a key that
holds personal data. Saving calls audiences/catalogue/services.py `catalogue_entry_mark_pii`
through the admin door (policy, audit); entries are neither added nor deleted here —
ingestion writes them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.http import HttpRequest

from audiences.catalogue import services as catalogue
from audiences.models import CatalogueEntry
from marketerapi.admin.mixins import NoDeleteMixin, ServiceForm, ServiceFormAdminMixin
from marketerapi.admin.site import admin_actor
from marketerapi.problems import ApplicationError


class CatalogueEntryForm(ServiceForm):
    class Meta:
        model = CatalogueEntry
        fields: ClassVar[list[str]] = ["pii"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        if self.errors or self.instance.pk is None:
            return self.cleaned_data
        try:
            self.result = catalogue.catalogue_entry_mark_pii(
                actor=admin_actor(self.request, self.instance.environment),
                entry=self.instance,
                pii=bool(self.cleaned_data.get("pii")),
            )
        except ApplicationError as exc:
            self.refuse(exc)
            return self.cleaned_data
        self.instance = self.result
        return self.cleaned_data


@admin.register(CatalogueEntry)
class CatalogueEntryAdmin(NoDeleteMixin, ServiceFormAdminMixin, admin.ModelAdmin):
    form = CatalogueEntryForm
    list_display = ["key", "kind", "event_type", "environment", "types_seen", "seen_count", "last_seen_at", "pii"]
    list_filter = ["environment", "kind", "pii"]
    search_fields = ["key", "event_type"]
    search_help_text = "Part of the key or event type."
    list_select_related = ["environment"]
    readonly_fields = [
        "environment",
        "kind",
        "event_type",
        "key",
        "types_seen",
        "seen_count",
        "first_seen_at",
        "last_seen_at",
    ]
    fields = [*readonly_fields, "pii"]
    show_full_result_count = False

    @admin.display(description="types seen")
    def types_seen(self, entry: CatalogueEntry) -> str:
        return ", ".join(entry.types) or "—"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
