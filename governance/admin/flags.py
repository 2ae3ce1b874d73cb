"""Admin pages of feature flags (waffle's, with their metadata and history), switches and
samples. Every save, delete and action goes through governance/flags/services.py, like the
API: audited (door `admin`, in the environment the person acts in: flags are global) and
announced as `flag.changed`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from simple_history.admin import SimpleHistoryAdmin
from waffle import admin as waffle_admin
from waffle.models import Flag, Sample, Switch

from governance.actors import Actor
from governance.flags import services as flag_services
from governance.models import FlagMeta
from marketerapi.admin.mixins import ServiceAdminMixin, for_each, problem_text, record_denial_again
from marketerapi.admin.site import admin_actor
from marketerapi.problems import ApplicationError

# The settings of waffle's flag form that flag_set takes as they are (groups and users are
# passed as objects; the name is set once).
FLAG_SETTINGS = (
    "everyone",
    "percent",
    "superusers",
    "staff",
    "authenticated",
    "testing",
    "rollout",
    "languages",
    "note",
)


class ServiceDeleteMixin:
    """The change page's Delete runs the model admin's delete_model, which calls a service: a
    refusal comes back as a message on the page instead of an error."""

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)  # type: ignore[misc]
        except ApplicationError as exc:
            record_denial_again(exc)
            self.message_user(request, problem_text(exc), messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())


class FlagMetaInline(admin.StackedInline):
    model = FlagMeta
    fields = ["description", "owner", "affects_personalization"]
    extra = 1
    max_num = 1
    can_delete = False


class FlagAdmin(ServiceDeleteMixin, ServiceAdminMixin, SimpleHistoryAdmin, waffle_admin.FlagAdmin):
    """Waffle's flag page with the flag's metadata and history. A new flag is added with
    flag_create; a change of its settings goes through flag_set, like in the API (switching
    off a personalization flag files an approval request); deleting through flag_delete
    (never a personalization flag). The name is set once: code asks for a flag by name, so
    renaming one switches it off for everyone, approvals or not."""

    inlines = [FlagMetaInline]
    actions = ["switch_on_for_everyone", "switch_off_for_everyone", "delete_flags"]
    # waffle's FlagAdmin declares these as fixed-length tuples; ours have other columns.
    list_display = ("name", "description", "owner", "affects_personalization", "everyone", "percent", "note")  # type: ignore[assignment]
    list_filter = ("everyone", "meta__affects_personalization", "superusers", "staff", "authenticated", "testing")  # type: ignore[assignment]
    search_fields = ("name", "note", "meta__description", "meta__owner")  # type: ignore[assignment]
    list_select_related = ["meta"]

    @admin.display(description="description")
    def description(self, flag: Flag) -> str:
        meta = getattr(flag, "meta", None)
        return meta.description[:80] if meta else "— (describe it)"

    @admin.display(description="owner")
    def owner(self, flag: Flag) -> str:
        meta = getattr(flag, "meta", None)
        return meta.owner if meta else "—"

    @admin.display(description="affects personalization", boolean=True)
    def affects_personalization(self, flag: Flag) -> bool:
        meta = getattr(flag, "meta", None)
        return bool(meta and meta.affects_personalization)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["name", "created", "modified"] if obj is not None else ["created", "modified"]

    # -- the change form: flag_create or flag_set, then the metadata ----------------------------

    def save_model(self, request: HttpRequest, obj: Flag, form: Any, change: bool) -> None:
        return None  # saved in save_related, which has the groups and users as well

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        data = form.cleaned_data
        actor = admin_actor(request)
        groups, users = list(data.get("groups") or []), list(data.get("users") or [])
        if not change:
            flag_services.flag_create(actor=actor, flag=form.instance, groups=groups, users=users)
        else:
            # Before the metadata: unmarking `affects_personalization` in the same save does not
            # spare a switch-off its approvals.
            outcome = flag_services.flag_set(
                actor=actor,
                flag_name=form.instance.name,
                groups=groups,
                users=users,
                **{name: data[name] for name in FLAG_SETTINGS if name in data},
            )
            if outcome.approval is not None:
                self.message_user(
                    request,
                    f"Switching off {form.instance.name!r} needs approval: request #{outcome.approval.pk} was filed "
                    f"({outcome.approval.required} approval(s)); the rollout changes once it is approved.",
                    messages.WARNING,
                )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not FlagMeta:
            super().save_formset(request, form, formset, change)
            return
        for meta in formset.save(commit=False):
            meta.flag = form.instance
            flag_services.flag_meta_save(actor=admin_actor(request), meta=meta)

    def delete_model(self, request: HttpRequest, obj: Flag) -> None:
        flag_services.flag_delete(actor=admin_actor(request), flag=obj)

    # -- actions --------------------------------------------------------------------------------

    def _switch(self, request: HttpRequest, queryset: QuerySet[Flag], everyone: bool) -> None:
        def call(actor: Actor, flag: Flag) -> str | None:
            outcome = flag_services.flag_set(actor=actor, flag_name=flag.name, everyone=everyone)
            if outcome.approval is not None:
                self.message_user(
                    request, f"{flag.name}: approval request #{outcome.approval.pk} filed.", messages.WARNING
                )
                return None
            changed = outcome.result is not None and outcome.result.changed
            return f"{flag.name}: {'on' if everyone else 'off'} for everyone." if changed else None

        for_each(self, request, queryset, call, environment_of=_acting_environment)

    @admin.action(description="Switch on for everyone", permissions=["change"])
    def switch_on_for_everyone(self, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        self._switch(request, queryset, True)

    @admin.action(
        description="Switch off for everyone (personalization flags: files an approval request)", permissions=["change"]
    )
    def switch_off_for_everyone(self, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        self._switch(request, queryset, False)

    @admin.action(description="Delete the selected flags (never a personalization flag)", permissions=["delete"])
    def delete_flags(self, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        def call(actor: Actor, flag: Flag) -> str:
            flag_services.flag_delete(actor=actor, flag=flag)
            return f"Deleted {flag.name}."

        for_each(self, request, queryset, call, environment_of=_acting_environment)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The page offers no Delete for a personalization flag (flag_delete refuses it too).
        meta = getattr(obj, "meta", None) if obj is not None else None
        if meta is not None and meta.affects_personalization:
            return False
        return super().has_delete_permission(request, obj)


class SwitchAdmin(ServiceDeleteMixin, ServiceAdminMixin, SimpleHistoryAdmin, waffle_admin.SwitchAdmin):
    """Switches, saved and deleted through switch_save and switch_delete (audited)."""

    search_fields = ("name", "note")
    readonly_fields = ["created", "modified"]
    actions = ["enable_switches", "disable_switches", "delete_individually"]

    def save_model(self, request: HttpRequest, obj: Switch, form: Any, change: bool) -> None:
        flag_services.switch_save(actor=admin_actor(request), switch=obj)

    def delete_model(self, request: HttpRequest, obj: Switch) -> None:
        flag_services.switch_delete(actor=admin_actor(request), switch=obj)

    def _set(self, request: HttpRequest, queryset: QuerySet[Switch], active: bool) -> None:
        def call(actor: Actor, switch: Switch) -> str:
            switch.active = active
            flag_services.switch_save(actor=actor, switch=switch)
            return f"{switch.name}: {'on' if active else 'off'}."

        for_each(self, request, queryset, call, environment_of=_acting_environment)

    @admin.action(description="Enable selected switches", permissions=["change"])
    def enable_switches(self, request: HttpRequest, queryset: QuerySet[Switch]) -> None:
        self._set(request, queryset, True)

    @admin.action(description="Disable selected switches", permissions=["change"])
    def disable_switches(self, request: HttpRequest, queryset: QuerySet[Switch]) -> None:
        self._set(request, queryset, False)

    @admin.action(description="Delete selected", permissions=["delete"])
    def delete_individually(self, request: HttpRequest, queryset: QuerySet[Switch]) -> None:
        def call(actor: Actor, switch: Switch) -> str:
            flag_services.switch_delete(actor=actor, switch=switch)
            return f"Deleted {switch.name}."

        for_each(self, request, queryset, call, environment_of=_acting_environment)


class SampleAdmin(ServiceDeleteMixin, ServiceAdminMixin, SimpleHistoryAdmin, waffle_admin.SampleAdmin):
    """Samples, saved and deleted through sample_save and sample_delete (audited)."""

    search_fields = ("name", "note")
    readonly_fields = ["created", "modified"]
    actions = ["delete_individually"]

    def save_model(self, request: HttpRequest, obj: Sample, form: Any, change: bool) -> None:
        flag_services.sample_save(actor=admin_actor(request), sample=obj)

    def delete_model(self, request: HttpRequest, obj: Sample) -> None:
        flag_services.sample_delete(actor=admin_actor(request), sample=obj)

    @admin.action(description="Delete selected", permissions=["delete"])
    def delete_individually(self, request: HttpRequest, queryset: QuerySet[Sample]) -> None:
        def call(actor: Actor, sample: Sample) -> str:
            flag_services.sample_delete(actor=actor, sample=sample)
            return f"Deleted {sample.name}."

        for_each(self, request, queryset, call, environment_of=_acting_environment)


def _acting_environment(obj: Any) -> None:
    """Flags, switches and samples have no environment: changes are decided and audited in
    the one the person acts in (admin_actor's default)."""
    return None


for _model, _admin in ((Flag, FlagAdmin), (Switch, SwitchAdmin), (Sample, SampleAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)
