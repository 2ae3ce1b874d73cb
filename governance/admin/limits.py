"""Admin pages of quotas: the policies (saved through
governance.configuration.services.quota_policy_save) and what each person or token used
(read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from governance.admin.metrics import SimulateBeforeSaveMixin, quota_rule
from governance.configuration import services as config_services
from governance.configuration import validators
from governance.configuration.errors import InvalidConfig
from governance.models import QuotaPolicy, QuotaUsage
from governance.roles import ROLE_NAMES
from marketerapi.admin.large_tables import IndexedValuesFilter, LargeTableMixin
from marketerapi.admin.mixins import NoDeleteMixin, ReadOnlyAdminMixin, ServiceAdminMixin
from marketerapi.admin.site import admin_actor


class QuotaPolicyForm(forms.ModelForm):
    role = forms.ChoiceField(
        choices=[("", "—")] + [(r, r) for r in ROLE_NAMES],
        required=False,
        help_text="Set at most one of role, user and token; none of them makes the default for everyone.",
    )

    class Meta:
        model = QuotaPolicy
        fields = [
            "name",
            "action",
            "description",
            "period",
            "limit",
            "environment",
            "role",
            "user",
            "token",
            "is_active",
        ]

    def clean_action(self) -> str:
        try:
            return validators.check_action_name(self.cleaned_data.get("action"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_action") from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        try:
            validators.check_quota_subject(data.get("role") or "", data.get("user"), data.get("token"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_quota_subject") from None
        return data


@admin.register(QuotaPolicy)
class QuotaPolicyAdmin(SimulateBeforeSaveMixin, ServiceAdminMixin, NoDeleteMixin, SimpleHistoryAdmin):
    form = QuotaPolicyForm
    list_display = ["name", "action", "limit", "period", "subject", "environment", "is_active"]
    list_filter = ["period", "environment", "role", "is_active"]
    search_fields = ["name", "action", "description", "user__username", "token__prefix"]
    list_select_related = ["environment", "user", "token"]
    autocomplete_fields = ["user", "token"]

    @admin.display(description="applies to")
    def subject(self, obj: QuotaPolicy) -> str:
        if obj.token_id:
            return f"token {obj.token}"
        if obj.user_id:
            return f"user {obj.user}"
        if obj.role:
            return f"role {obj.role}"
        return "everyone (default)"

    def simulation_rule(self, data: dict[str, Any]) -> dict[str, Any]:
        return quota_rule(data)

    def save_model(self, request: HttpRequest, obj: QuotaPolicy, form: Any, change: bool) -> None:
        config_services.quota_policy_save(actor=admin_actor(request, obj.environment), quota_policy=obj)


class QuotaNameFilter(IndexedValuesFilter):
    title = "quota"
    parameter_name = "quota"


@admin.register(QuotaUsage)
class QuotaUsageAdmin(ReadOnlyAdminMixin, LargeTableMixin, admin.ModelAdmin):  # type: ignore[misc]  # LargeTableMixin's template is a plain str; Django's stubs allow more
    """What each person or token used of each quota per period (counted by governance.limits.services.quota_consume).
    The admin index lists the rows past 80 % of their limit (marketerapi/admin/dashboard.py)."""

    list_display = ["quota", "subject", "period_start", "used"]
    list_filter = [QuotaNameFilter]
    search_fields = ["=subject", "=quota"]
    search_help_text = "An exact subject (user:<id> or token:<id>, with @env<id> for one environment) or quota name."
    date_hierarchy = "period_start"
