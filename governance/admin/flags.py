"""Admin pages of feature flags (waffle's, with their metadata and history), switches and
samples."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin
from waffle import admin as waffle_admin
from waffle.models import Flag, Sample, Switch

from governance import policy
from governance.configuration import services as config_services
from governance.flags import services as flag_services
from governance.models import FlagMeta
from marketerapi.admin.mixins import ServiceAdminMixin, problem_text
from marketerapi.admin.site import admin_actor
from marketerapi.problems import ApplicationError


class FlagMetaInline(admin.StackedInline):
    model = FlagMeta
    fields = ["description", "owner", "affects_personalization"]
    extra = 1
    max_num = 1
    can_delete = False


class FlagAdmin(ServiceAdminMixin, SimpleHistoryAdmin, waffle_admin.FlagAdmin):
    """Waffle's flag page with the flag's metadata and history. Who has a flag (everyone,
    percent, groups, users) changes through flag_set, like in the API: audited, announced as
    `flag.changed`, and switching off a personalization flag files an approval request.
    The other settings are saved as they are; the audit safety net in
    governance.flag_services records those changes."""

    inlines = [FlagMetaInline]
    readonly_fields = ["created", "modified"]
    actions = ["switch_on_for_everyone", "switch_off_for_everyone", "delete_flags"]
    list_display: Any = ("name", "description", "owner", "affects_personalization", "everyone", "percent", "note")
    list_filter: Any = ("everyone", "meta__affects_personalization", "superusers", "staff", "authenticated", "testing")
    search_fields: Any = ("name", "note", "meta__description", "meta__owner")
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

    # -- the change form: the rollout through flag_set ---------------------------------------

    def save_model(self, request: HttpRequest, obj: Flag, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        stored = Flag.objects.get(pk=obj.pk)
        # Keep the rollout as stored here; save_related hands the wanted one to flag_set.
        obj._admin_rollout = {"everyone": obj.everyone, "percent": obj.percent}  # type: ignore[attr-defined]
        obj.everyone, obj.percent = stored.everyone, stored.percent
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if not change:
            super().save_related(request, form, formsets, change)
            return
        flag = form.instance
        wanted = flag._admin_rollout
        # Before the metadata: unmarking `affects_personalization` in the same save does not
        # spare a switch-off its approvals.
        actor = admin_actor(request)
        try:
            outcome = flag_services.flag_set(
                actor=actor,
                flag_name=flag.name,
                everyone=wanted["everyone"],
                percent=wanted["percent"],
                groups=list(form.cleaned_data.get("groups") or []),
                users=list(form.cleaned_data.get("users") or []),
            )
        except flag_services.PersonalizationFlagNeedsApproval as exc:
            # flag_set audited the refusal in the admin's transaction, which this rolls back.
            decision = policy.Decision(policy.DENY, "approval_policy", [exc.detail], hint=exc.hint)
            exc.denial = (actor, flag_services.DISABLE_PERSONALIZATION, flag, decision)  # type: ignore[attr-defined]
            raise
        if outcome.approval is not None:
            self.message_user(
                request,
                f"Switching off {flag.name!r} needs approval: request #{outcome.approval.pk} was filed "
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
            config_services.flag_meta_save(actor=admin_actor(request), meta=meta)

    # -- actions --------------------------------------------------------------------------------

    def _each(self, request: HttpRequest, queryset: QuerySet[Flag], everyone: bool) -> None:
        for flag in queryset:
            try:
                outcome = flag_services.flag_set(actor=admin_actor(request), flag_name=flag.name, everyone=everyone)
            except ApplicationError as exc:
                self.message_user(request, f"{flag.name}: {problem_text(exc)}", messages.WARNING)
                continue
            if outcome.approval is not None:
                self.message_user(
                    request, f"{flag.name}: approval request #{outcome.approval.pk} filed.", messages.WARNING
                )
            elif outcome.changed:
                self.message_user(request, f"{flag.name}: {'on' if everyone else 'off'} for everyone.")

    @admin.action(description="Switch on for everyone", permissions=["change"])
    def switch_on_for_everyone(self, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        self._each(request, queryset, True)

    @admin.action(
        description="Switch off for everyone (personalization flags: files an approval request)", permissions=["change"]
    )
    def switch_off_for_everyone(self, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        self._each(request, queryset, False)

    @admin.action(description="Delete the selected flags (never a personalization flag)", permissions=["delete"])
    def delete_flags(self, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        for flag in queryset.select_related("meta"):
            if not self.has_delete_permission(request, flag):
                self.message_user(
                    request,
                    f"{flag.name} affects personalization; deleting it switches it off for everyone. "
                    "Switch it off (with approvals) first, then unmark it.",
                    messages.WARNING,
                )
                continue
            flag.delete()  # audited by governance.flag_services' safety net
            self.message_user(request, f"Deleted {flag.name}.")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        meta = getattr(obj, "meta", None) if obj is not None else None
        if meta is not None and meta.affects_personalization:
            return False
        return super().has_delete_permission(request, obj)


class SwitchAdmin(SimpleHistoryAdmin, waffle_admin.SwitchAdmin):
    """Switches are saved as they are; governance.flag_services audits every change."""

    search_fields = ("name", "note")
    readonly_fields = ["created", "modified"]


class SampleAdmin(SimpleHistoryAdmin, waffle_admin.SampleAdmin):
    """Samples are saved as they are; governance.flag_services audits every change."""

    search_fields = ("name", "note")
    readonly_fields = ["created", "modified"]


for _model, _admin in ((Flag, FlagAdmin), (Switch, SwitchAdmin), (Sample, SampleAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)
