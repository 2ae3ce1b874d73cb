"""Admin pages of environments: their time zone and change windows, and "act in this
environment", the choice that decides and audits changes to objects without one.

Saved through governance.configuration.services.environment_save (door `admin`); the form
runs the service's validators, so a bad value is refused on its field.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from governance.access.selectors import SESSION_ENVIRONMENT_KEY
from governance.configuration import services as config_services
from governance.configuration import validators
from governance.configuration.errors import InvalidConfig
from governance.models import Environment
from marketerapi.admin.mixins import NoDeleteMixin, ServiceAdminMixin
from marketerapi.admin.site import admin_actor


def _json_help(example: Any) -> str:
    return f"JSON, e.g. {json.dumps(example)}"


class EnvironmentForm(forms.ModelForm):
    class Meta:
        model = Environment
        fields = ["slug", "name", "purpose", "data_kind", "time_zone", "change_windows"]
        help_texts = {
            "change_windows": "Hours in which production publishes and activations may run, in the environment's "
            "time zone; days 0–6 (0 = Monday), start before end. "
            + _json_help([{"days": [0, 1, 2, 3], "start": "09:00", "end": "17:00"}])
            + ". Empty ([]) means any time.",
            "time_zone": 'An IANA time zone, e.g. "Europe/London" or "UTC".',
        }

    def clean_time_zone(self) -> str:
        try:
            return validators.check_time_zone(self.cleaned_data.get("time_zone"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_time_zone") from None

    def clean_change_windows(self) -> Any:
        try:
            return validators.check_change_windows(self.cleaned_data.get("change_windows"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_change_windows") from None


@admin.register(Environment)
class EnvironmentAdmin(ServiceAdminMixin, NoDeleteMixin, SimpleHistoryAdmin):
    form = EnvironmentForm
    actions = ["act_here"]
    list_display = ["slug", "name", "data_kind", "time_zone", "windows", "created_at"]
    list_filter = ["data_kind", "time_zone"]
    search_fields = ["slug", "name", "purpose"]

    @admin.display(description="change windows")
    def windows(self, obj: Environment) -> str:
        from governance.approvals.windows import ChangeWindowsBroken, describe_windows

        try:
            return describe_windows(obj)
        except ChangeWindowsBroken:
            return "invalid — fix them"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The slug is in every token's prefix; the data kind decides whether the environment
        # is a sandbox (no approvals). Both are set once.
        return ["created_at", "slug", "data_kind"] if obj is not None else ["created_at"]

    def save_model(self, request: HttpRequest, obj: Environment, form: Any, change: bool) -> None:
        actor = admin_actor(request, obj if change else None)
        config_services.environment_save(actor=actor, environment=obj)

    @admin.action(description="Act in this environment (for users, teams, flags, service accounts)")
    def act_here(self, request: HttpRequest, queryset: QuerySet[Environment]) -> None:
        # Changes to objects that have no environment are decided by this environment's
        # policy and audited in its trail (e.g. a personalization flag's switch-off is filed
        # for approval in production). The portal shares the choice: it is the session's.
        chosen = list(queryset[:2])
        if len(chosen) != 1:
            self.message_user(request, "Select exactly one environment.", messages.WARNING)
            return
        request.session[SESSION_ENVIRONMENT_KEY] = chosen[0].slug
        self.message_user(request, f"You now act in {chosen[0].slug} (here and in the portal).", messages.SUCCESS)
