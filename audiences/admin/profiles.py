"""Admin pages for profiles and what ingestion writes: read-only, because every write
goes through the services (the API's bulk endpoints) so that it is validated and audited.

Holders of the admin role see unmasked PII here (PRODUCT.md §4); every page that shows it
is audited as a `profile.pii_read` through the admin door. Other staff (developers) see
the same masked values as the API shows them, and cannot search by email.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from audiences.models import Consent, ConsentChange, Profile, ProfileEvent
from audiences.profiles import services
from audiences.profiles.pii import MASKS, mask_pii
from audiences.profiles.selectors import pii_attribute_keys
from marketerapi.admin.mixins import ReadOnlyAdminMixin
from marketerapi.admin.site import admin_actor


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Large tables: no COUNT(*) of the whole table under every filtered page.
    show_full_result_count = False


def _sees_pii(request: HttpRequest) -> bool:
    from governance.roles import ADMIN

    return bool(request.user.is_superuser or request.user.groups.filter(name=ADMIN).exists())


def _masked(field: str) -> Any:
    @admin.display(description=field.replace("_", " "))
    def show(profile: Profile) -> Any:
        return MASKS[field](getattr(profile, field))

    show.__name__ = f"{field}_masked"
    return show


def _audit_pii_read(request: HttpRequest, profiles: list[Profile]) -> None:
    """One `profile.pii_read` per environment shown on the page."""
    by_environment: dict[Any, list[Profile]] = defaultdict(list)
    for profile in profiles:
        by_environment[profile.environment].append(profile)
    for environment, shown in by_environment.items():
        services.profile_pii_read_record(actor=admin_actor(request, environment), profiles=shown)


class ConsentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Consent
    fields = ("channel", "status", "source", "captured_at", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Profile)
class ProfileAdmin(ReadOnlyAdmin):
    list_display = [
        "external_id",
        "environment",
        "email",
        "first_name",
        "last_name",
        "region",
        "lifecycle_stage",
        "country",
        "updated_at",
    ]
    # Only filters with fixed choices: a filter on a free-text column runs a DISTINCT over
    # the whole table on every page view.
    list_filter = ["environment", "region", "lifecycle_stage"]
    search_fields = ["=external_id", "=email"]
    search_help_text = "An exact external_id or email."
    list_select_related = ["environment"]
    inlines = [ConsentInline]
    email_masked = staticmethod(_masked("email"))
    phone_masked = staticmethod(_masked("phone"))
    push_token_masked = staticmethod(_masked("push_token"))
    first_name_masked = staticmethod(_masked("first_name"))
    last_name_masked = staticmethod(_masked("last_name"))

    def get_list_display(self, request: HttpRequest) -> Any:
        if _sees_pii(request):
            return self.list_display
        return [f"{name}_masked" if name in MASKS else name for name in self.list_display]

    def get_search_fields(self, request: HttpRequest) -> Any:
        return self.search_fields if _sees_pii(request) else ["=external_id"]

    DETAIL_FIELDS = [f.name for f in Profile._meta.fields if f.name != "id"]

    @admin.display(description="attributes")
    def attributes_masked(self, profile: Profile) -> Any:
        """The custom attributes, those marked as personal data in the catalogue masked."""
        keys = pii_attribute_keys(environment=profile.environment)
        return mask_pii({"attributes": profile.attributes}, keys)["attributes"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if _sees_pii(request):
            return self.DETAIL_FIELDS
        masked = {*MASKS, "attributes"}
        return [f"{name}_masked" if name in masked else name for name in self.DETAIL_FIELDS]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", None) or {}
        if "cl" in changelist and _sees_pii(request):
            _audit_pii_read(request, list(changelist["cl"].result_list))
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        original = (getattr(response, "context_data", None) or {}).get("original")
        if isinstance(original, Profile) and _sees_pii(request):
            _audit_pii_read(request, [original])
        return response


@admin.register(Consent)
class ConsentAdmin(ReadOnlyAdmin):
    list_display = ["profile", "channel", "status", "source", "captured_at", "updated_at"]
    list_filter = ["channel", "status", "profile__environment"]
    search_fields = ["=profile__external_id"]
    search_help_text = "A profile's exact external_id."
    list_select_related = ["profile"]


@admin.register(ConsentChange)
class ConsentChangeAdmin(ReadOnlyAdmin):
    list_display = [
        "profile",
        "channel",
        "previous_status",
        "status",
        "source",
        "captured_at",
        "recorded_at",
        "request_id",
    ]
    list_filter = ["channel", "status", "profile__environment"]
    search_fields = ["=profile__external_id", "=request_id"]
    search_help_text = "A profile's exact external_id, or a request id."
    list_select_related = ["profile"]


@admin.register(ProfileEvent)
class ProfileEventAdmin(ReadOnlyAdmin):
    list_display = ["profile", "type", "occurred_at", "event_id", "received_at"]
    list_filter = ["profile__environment"]
    search_fields = ["=profile__external_id", "=event_id"]
    search_help_text = "A profile's exact external_id, or an event_id."
    list_select_related = ["profile"]
