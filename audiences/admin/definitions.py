"""Admin pages for audience definitions, suppression lists and regional restrictions.

Nothing here writes by itself: every save and action calls the same services as the API
(audiences/definitions/services.py, audiences/suppressions/services.py) with the signed-in user as
actor through the admin door, so the policy engine, the approval policy and the audit
trail see them like any other change. A refusal is shown on the form with its hint.

The service runs while the form is validated (in the admin's transaction): that is the
last moment a refusal can still be shown as a form error. `save_model` then has nothing
left to write. Deleting is not offered: audiences are deleted or archived with an action
(which follows the approval policy), suppression entries are removed through the list's
form, and restrictions are switched off with `is_active`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from audiences.definitions import services as audience_services
from audiences.definitions.selectors import teams
from audiences.models import Audience, RegionalRestriction, SuppressionEntry, SuppressionList
from audiences.suppressions import services as suppressions
from audiences.suppressions.entries import Key, hash_email, parse_entries
from governance.actors import Actor
from governance.approvals import ActionOutcome
from marketerapi.admin.mixins import NoDeleteMixin, ReadOnlyAdminMixin, ServiceForm, ServiceFormAdminMixin, for_each
from marketerapi.admin.site import admin_actor
from marketerapi.problems import ApplicationError

# --- audiences ---------------------------------------------------------------------------------


class AudienceForm(ServiceForm):
    owner_team = forms.ModelChoiceField(queryset=Group.objects.none(), help_text="The team that owns the audience.")
    # The owner of a saved audience changes only through `audience_transfer` (audited as
    # `audience.transfer`): the owner field is read-only on the change form, this one hands it on.
    transfer_to = forms.ModelChoiceField(
        queryset=Group.objects.none(),
        required=False,
        label="Transfer to team",
        help_text="Hand the audience to another team (audited as a transfer). Leave empty to keep the owner.",
    )

    class Meta:
        model = Audience
        fields: ClassVar[list[str]] = [
            "environment",
            "name",
            "owner_team",
            "channel",
            "purpose",
            "description",
            "rules",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner_team = self.fields["owner_team"]
        assert isinstance(owner_team, forms.ModelChoiceField)
        owner_team.queryset = teams().order_by("name")
        transfer_to = self.fields["transfer_to"]
        assert isinstance(transfer_to, forms.ModelChoiceField)
        transfer_to.queryset = teams().order_by("name")
        if self.instance.pk is not None:
            if "environment" in self.fields:
                self.fields["environment"].disabled = True
            owner_team.disabled = True

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        values: dict[str, Any] = {
            name: data[name] for name in ("name", "channel", "purpose", "description", "rules") if name in data
        }
        values["owner_team"] = data["owner_team"].name if data.get("owner_team") is not None else None
        try:
            if self.instance.pk is None:
                actor = admin_actor(self.request, data["environment"])
                self.result = audience_services.audience_create(actor=actor, **values)
            else:
                current = Audience.objects.select_related("environment", "owner_team").get(pk=self.instance.pk)
                changed = {name: values[name] for name in self.changed_data if name in values and name != "owner_team"}
                actor = admin_actor(self.request, current.environment)
                self.result = audience_services.audience_update(actor=actor, audience=current, **changed)
                if data.get("transfer_to") is not None:
                    self.result = audience_services.audience_transfer(
                        actor=actor, audience=self.result, team=data["transfer_to"].name
                    )
        except ApplicationError as exc:
            self.refuse(exc)
            return data
        self.instance = self.result
        return data


@admin.register(Audience)
class AudienceAdmin(NoDeleteMixin, ServiceFormAdminMixin, SimpleHistoryAdmin):
    """Drafts are deleted and published audiences archived with the action below (which
    follows the approval policy), never by the admin's delete."""

    form = AudienceForm
    list_display = [
        "name",
        "environment",
        "owner_team",
        "channel",
        "purpose",
        "state",
        "live_version",
        "reach",
        "versions_link",
        "updated_at",
    ]
    list_filter = ["environment", "state", "channel", "owner_team"]
    search_fields = ["name", "purpose", "description"]
    search_help_text = "Part of the name, purpose or description."
    list_select_related = ["environment", "owner_team", "live_version"]
    readonly_fields = ["state", "live_version", "reach", "versions_link", "created_by", "created_at", "updated_at"]
    actions = ["delete_or_archive", "copy_into_my_team"]
    show_full_result_count = False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_fields(request, obj))
        return fields if obj is not None else [name for name in fields if name != "transfer_to"]

    @admin.display(description="reach (live)", ordering="live_version__members")
    def reach(self, obj: Audience) -> int | None:
        return obj.live_version.members if obj.live_version is not None else None

    @admin.display(description="versions")
    def versions_link(self, obj: Audience) -> str:
        if obj.pk is None:
            return "-"
        url = reverse("admin:audiences_audienceversion_changelist") + f"?audience__id__exact={obj.pk}"
        return format_html('<a href="{}">versions</a>', url)

    @admin.action(description="Delete drafts / archive published audiences (follows the approval policy)")
    def delete_or_archive(self, request: HttpRequest, queryset: QuerySet[Audience]) -> None:
        def delete(actor: Actor, audience: Audience) -> str:
            outcome = audience_services.audience_delete(actor=actor, audience=audience)
            if outcome.approval is not None:
                note = f"approval request #{outcome.approval.pk} filed; it is archived once approved."
            else:
                note = "archived." if outcome.result is not None else "deleted."
            return f"{audience.name}: {note}"

        for_each(self, request, queryset.select_related("environment", "owner_team"), delete)

    @admin.action(description="Copy into my team as a draft (rules, channel, purpose, description; no members)")
    def copy_into_my_team(self, request: HttpRequest, queryset: QuerySet[Audience]) -> None:
        def copy(actor: Actor, audience: Audience) -> str:
            copied = audience_services.audience_copy(actor=actor, audience=audience)
            made = copied.audience
            note = (
                f"; {len(copied.warnings)} condition(s) name an audience it may not use now (validate it)"
                if copied.warnings
                else ""
            )
            return f"{audience.name}: copied as the draft {made.name!r} (id {made.pk}), team {made.owner_team}{note}."

        for_each(self, request, queryset.select_related("environment", "owner_team"), copy)


# --- suppression lists --------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def entries_from_lines(lines: list[str]) -> list[Key]:
    """One external id or email per line; emails (with an @) are hashed on the way in."""
    rows = [{"email": line} if "@" in line else {"external_id": line} for line in lines]
    return parse_entries(rows)


class SuppressionListForm(ServiceForm):
    add_entries = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="One external id or email per line. Emails are stored only as SHA-256 of the lower-cased address.",
    )
    remove_entries = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="One external id or email per line."
    )
    reason = forms.CharField(required=False, max_length=200)

    class Meta:
        model = SuppressionList
        fields: ClassVar[list[str]] = ["environment", "name", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notes: list[str] = []
        if self.instance.pk is not None:
            for name in ("environment", "name", "description"):
                if name in self.fields:
                    self.fields[name].disabled = True

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        try:
            add = entries_from_lines(_lines(data.get("add_entries", "")))
            remove = entries_from_lines(_lines(data.get("remove_entries", "")))
            reason = data.get("reason", "")
            if self.instance.pk is None:
                if remove:
                    self.add_error("remove_entries", "A new list has nothing to remove.")
                    return data
                outcome = ActionOutcome(
                    result=suppressions.suppression_list_create(
                        actor=admin_actor(self.request, data["environment"]),
                        name=data["name"],
                        description=data.get("description", ""),
                        entries=add,
                        reason=reason,
                    )
                )
            else:
                current = SuppressionList.objects.select_related("environment").get(pk=self.instance.pk)
                if not add and not remove:
                    self.result = current
                    return data
                outcome = suppressions.suppression_entries_change(
                    actor=admin_actor(self.request, current.environment),
                    list_name=suppressions.GLOBAL if current.is_global else current.name,
                    add=add,
                    remove=remove,
                    reason=reason,
                )
        except ApplicationError as exc:
            self.refuse(exc)
            return data
        if outcome.approval is not None:
            self.notes.append(
                f"Changing the global list needs approval: request #{outcome.approval.pk} was filed; "
                "nothing changes until it is approved."
            )
            self.result = self.instance
        else:
            assert outcome.result is not None
            self.notes.append(
                "Added {added}, already listed {already_listed}, removed {removed}, not listed {not_listed}.".format(
                    **outcome.result.counts()
                )
            )
            self.result = outcome.result.suppression_list
        self.instance = self.result
        return data


class SuppressionEntryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = SuppressionEntry
    fields = ("external_id", "email_hash", "reason", "added_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    classes = ["collapse"]


@admin.register(SuppressionList)
class SuppressionListAdmin(NoDeleteMixin, ServiceFormAdminMixin, SimpleHistoryAdmin):
    form = SuppressionListForm
    inlines: ClassVar[list[Any]] = [SuppressionEntryInline]
    list_display = ["name", "environment", "is_global", "entry_count", "description", "created_by", "created_at"]
    list_filter = ["environment", "is_global"]
    search_fields = ["name", "description"]
    search_help_text = "Part of the list's name or description."
    list_select_related = ["environment", "created_by"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SuppressionList]:
        return super().get_queryset(request).annotate(entry_count=Count("entries"))

    @admin.display(description="entries", ordering="entry_count")
    def entry_count(self, obj: SuppressionList) -> int:
        return obj.entry_count  # type: ignore[attr-defined]  # annotated by get_queryset

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["environment", "name", "description", "add_entries", "remove_entries", "reason"]


@admin.register(SuppressionEntry)
class SuppressionEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: is someone suppressed? Search by external id, or by email (hashed first)."""

    list_display = ["suppression_list", "external_id", "email_hash", "reason", "added_at"]
    list_filter = ["suppression_list__environment", "suppression_list"]
    search_fields = ["=external_id", "=email_hash"]
    search_help_text = "An exact external id or email address (the email is hashed before searching)."
    list_select_related = ["suppression_list", "suppression_list__environment"]
    show_full_result_count = False

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        term = search_term.strip()
        if "@" in term:
            return queryset.filter(email_hash=hash_email(term)), False
        return super().get_search_results(request, queryset, term)


# --- regional restrictions ------------------------------------------------------------------------


class RegionalRestrictionForm(ServiceForm):
    class Meta:
        model = RegionalRestriction
        fields: ClassVar[list[str]] = ["environment", "region", "channel", "kind", "description", "is_active"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        restriction = self.instance if self.instance.pk is not None else RegionalRestriction()
        for name in self.Meta.fields:
            if name in data:
                setattr(restriction, name, data[name])
        try:
            self.result = audience_services.regional_restriction_save(
                actor=admin_actor(self.request, restriction.environment), restriction=restriction
            )
        except ApplicationError as exc:
            self.refuse(exc)
            return data
        self.instance = self.result
        return data


@admin.register(RegionalRestriction)
class RegionalRestrictionAdmin(NoDeleteMixin, ServiceFormAdminMixin, SimpleHistoryAdmin):
    """Switch a restriction off with is_active: its history stays readable."""

    form = RegionalRestrictionForm
    list_display = ["description", "environment", "region", "channel", "kind", "is_active"]
    list_filter = ["environment", "region", "channel", "kind", "is_active"]
    search_fields = ["description"]
    search_help_text = "Part of the description."
    list_select_related = ["environment"]
