"""Admin pages of people, roles and teams.

The six roles are read-only (governance/roles.py defines their permissions); teams are
created and renamed through governance.configuration.services.team_save; a person's roles,
teams and access flags change through user_access_set, their username, names and email
through user_change, their password through user_password_set.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, UserChangeForm
from django.contrib.auth.models import Group, User
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html_join
from simple_history.admin import SimpleHistoryAdmin

from governance.configuration import services as config_services
from governance.roles import ROLE_NAMES
from marketerapi.admin.mixins import NoDeleteMixin, ServiceAdminMixin, problem_text
from marketerapi.admin.site import admin_actor
from marketerapi.problems import ApplicationError


class GroupKindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("role", "roles"), ("team", "teams")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Group]) -> QuerySet[Group]:
        if self.value() == "role":
            return queryset.filter(name__in=ROLE_NAMES)
        if self.value() == "team":
            return queryset.exclude(name__in=ROLE_NAMES)
        return queryset


class TeamForm(forms.ModelForm):
    class Meta:
        model = Group
        fields = ["name"]
        help_texts = {"name": "A team owns audiences and campaigns, e.g. growth. Role names are taken."}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name in ROLE_NAMES:
            raise forms.ValidationError(f"{name!r} is a role; choose another name for the team.")
        return name


class RoleAndTeamAdmin(ServiceAdminMixin, NoDeleteMixin, SimpleHistoryAdmin, DjangoGroupAdmin):
    """The six roles (read-only: governance/roles.py defines their permissions and every
    migrate restores them) and the teams (created and renamed here; they hold no model
    permissions — what they own is shared per object)."""

    list_display = ["name", "kind", "members", "permission_count"]
    list_filter = [GroupKindFilter]
    search_fields = ["name"]
    form = TeamForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[Group]:
        return (
            super()
            .get_queryset(request)
            .annotate(member_count=Count("user", distinct=True), perm_count=Count("permissions", distinct=True))
        )

    @admin.display(description="kind")
    def kind(self, group: Group) -> str:
        return "role" if group.name in ROLE_NAMES else "team"

    @admin.display(description="members", ordering="member_count")
    def members(self, group: Group) -> int:
        return getattr(group, "member_count", 0)

    @admin.display(description="permissions", ordering="perm_count")
    def permission_count(self, group: Group) -> int:
        perm_count = getattr(group, "perm_count", None)
        return group.permissions.count() if perm_count is None else perm_count

    @admin.display(description="permissions (governance/roles.py)")
    def permission_list(self, group: Group) -> str:
        perms = group.permissions.select_related("content_type").order_by("content_type__app_label", "codename")
        return (
            format_html_join(
                "",
                "<div>{}.{} — {}</div>",
                ((p.content_type.app_label, p.codename, p.name) for p in perms),
            )
            or "none"
        )

    @admin.display(description="people")
    def member_list(self, group: Group) -> str:
        return ", ".join(group.user_set.order_by("username").values_list("username", flat=True)) or "nobody yet"

    def get_fields(self, request: HttpRequest, obj: Group | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("name",)
        if obj.name in ROLE_NAMES:
            return ("name", "permission_list", "member_list")
        return ("name", "member_list")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        if obj.name in ROLE_NAMES:
            return ["name", "permission_list", "member_list"]
        return ["member_list"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["fields"] = [f for f in self.get_fields(request, obj) if f not in self.get_readonly_fields(request, obj)]
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.name in ROLE_NAMES:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Group, form: Any, change: bool) -> None:
        config_services.team_save(actor=admin_actor(request), team=obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None  # a team has no permissions to save


class RoleFilter(admin.SimpleListFilter):
    title = "role"
    parameter_name = "role"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(r, r) for r in ROLE_NAMES] + [("none", "no role")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        if self.value() == "none":
            return queryset.exclude(groups__name__in=ROLE_NAMES)
        if self.value():
            return queryset.filter(groups__name=self.value())
        return queryset


class TeamFilter(admin.SimpleListFilter):
    title = "team"
    parameter_name = "team"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = Group.objects.exclude(name__in=ROLE_NAMES).order_by("name").values_list("name", flat=True)
        return [(n, n) for n in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        return queryset.filter(groups__name=self.value()) if self.value() else queryset


def _role_choices() -> list[tuple[str, str]]:
    return [(r, r) for r in ROLE_NAMES]


def _team_choices() -> list[tuple[str, str]]:
    names = Group.objects.exclude(name__in=ROLE_NAMES).order_by("name").values_list("name", flat=True)
    return [(n, n) for n in names]


class PersonChangeForm(UserChangeForm):
    roles = forms.MultipleChoiceField(
        choices=_role_choices, required=False, widget=forms.CheckboxSelectMultiple, help_text="What the person may do."
    )
    teams = forms.MultipleChoiceField(
        choices=_team_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Which audiences and campaigns the person may change (those their teams own).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            names = set(self.instance.groups.values_list("name", flat=True))
            self.initial["roles"] = [n for n in ROLE_NAMES if n in names]
            self.initial["teams"] = sorted(n for n in names if n not in ROLE_NAMES)


# Django builds the password form without the request; the page puts it here for the
# form's save (a context variable: one per request, whatever the threads).
_PASSWORD_REQUEST: ContextVar[HttpRequest | None] = ContextVar("person_password_request", default=None)


class PersonPasswordForm(AdminPasswordChangeForm):
    """Django's "set password" form, saved through user_password_set: audited, door `admin`."""

    def save(self, commit: bool = True) -> User:
        request = _PASSWORD_REQUEST.get()
        if request is None:
            raise RuntimeError("PersonPasswordForm is saved by PersonAdmin.user_change_password only")
        usable = self.cleaned_data.get("set_usable_password", True)
        return config_services.user_password_set(
            actor=admin_actor(request), user=self.user, password=self.cleaned_data["password1"] if usable else None
        )


class PersonAdmin(ServiceAdminMixin, NoDeleteMixin, DjangoUserAdmin):
    """People with their roles and teams. The username, names and email change through
    user_change, roles, teams and the access flags through user_access_set, and the
    password through user_password_set (all audited); per-user permissions are not used —
    roles are."""

    form = PersonChangeForm
    change_password_form = PersonPasswordForm
    list_display = ["username", "email", "roles", "teams", "is_staff", "is_active", "last_login"]
    list_filter = [RoleFilter, TeamFilter, "is_staff", "is_active", "is_superuser"]
    search_fields = ["username", "email", "first_name", "last_name"]
    date_hierarchy = "date_joined"
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Roles and teams", {"fields": ("roles", "teams")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ["last_login", "date_joined"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles")
    def roles(self, user: User) -> str:
        return ", ".join(sorted(g.name for g in user.groups.all() if g.name in ROLE_NAMES)) or "—"

    @admin.display(description="teams")
    def teams(self, user: User) -> str:
        return ", ".join(sorted(g.name for g in user.groups.all() if g.name not in ROLE_NAMES)) or "—"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields.append("is_superuser")  # only a superuser makes a superuser
        return fields

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        actor = admin_actor(request)
        if not change:
            config_services.user_create(actor=actor, user=obj)
            return
        # Two services, each a no-op when its part did not change: the username, names and
        # email (`user.change`), then roles, teams and access (`user.access_change`).
        config_services.user_change(actor=actor, user=obj)
        config_services.user_access_set(
            actor=actor,
            user=obj,
            roles=list(form.cleaned_data.get("roles") or []),
            teams=list(form.cleaned_data.get("teams") or []),
            is_active=obj.is_active,
            is_staff=obj.is_staff,
            is_superuser=obj.is_superuser,
        )

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        # Django's page, with a form that saves through user_password_set (see PersonPasswordForm).
        token = _PASSWORD_REQUEST.set(request)
        try:
            return super().user_change_password(request, id, form_url)
        except ApplicationError as exc:
            self.message_user(request, problem_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        finally:
            _PASSWORD_REQUEST.reset(token)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None  # groups are set by user_access_set; per-user permissions are not used


# django.contrib.auth registered its own pages for these; ours replace them.
for _model, _admin in ((Group, RoleAndTeamAdmin), (User, PersonAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)
