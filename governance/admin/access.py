"""Admin pages of API tokens and service accounts.

Tokens are issued through the API or `issue_token` (the secret is shown once there); here
they are seen and revoked (governance.access.services.token_revoke), and their hash is
never shown. Service accounts are created through service_account_create.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from governance.access import services
from governance.actors import Actor
from governance.models import ApiToken, ServiceAccount
from governance.roles import ROLE_NAMES
from marketerapi.admin.mixins import NoDeleteMixin, ServiceAdminMixin, for_each
from marketerapi.admin.site import admin_actor


class TokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "active"), ("expired", "expired"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class ServiceAccountTokenFilter(admin.SimpleListFilter):
    title = "service account"
    parameter_name = "service_account"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "a service account's"), ("no", "a person's")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
        if self.value() == "yes":
            return queryset.filter(user__service_account__isnull=False)
        if self.value() == "no":
            return queryset.filter(user__service_account__isnull=True)
        return queryset


# Everything but the hash: the hash is never shown, not even to admins.
TOKEN_FIELDS = (
    "prefix",
    "name",
    "environment",
    "user",
    "owner",
    "created_by",
    "scopes",
    "rate_limits",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
)


@admin.register(ApiToken)
class ApiTokenAdmin(NoDeleteMixin, admin.ModelAdmin):
    """Tokens are seen and revoked here; audit events point at them, so a token is revoked,
    never deleted."""

    list_display = [
        "prefix",
        "name",
        "environment",
        "user",
        "owner",
        "state",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["environment", TokenStateFilter, ServiceAccountTokenFilter]
    search_fields = ["prefix", "name", "user__username", "owner__username"]
    search_help_text = "Part of the prefix, name, user or owner."
    list_select_related = ["environment", "user", "owner"]
    date_hierarchy = "created_at"
    fields = TOKEN_FIELDS
    readonly_fields = TOKEN_FIELDS
    actions = ["revoke"]

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return "revoked" if token.is_revoked else "expired" if token.is_expired else "active"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # issued through the API or `issue_token`, where the secret is shown once

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("governance.delete_apitoken")

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        def call(actor: Actor, token: ApiToken) -> None:
            services.token_revoke(actor=actor, token=token)

        for_each(self, request, queryset.select_related("environment"), call, done="Revoked {} token(s).")


class ServiceAccountCreateForm(forms.ModelForm):
    """What service_account_create needs: the account's username, its roles (at most the
    creator's, unless an admin creates it), the person who answers for it, a description."""

    username = forms.SlugField(
        max_length=150, help_text="The integration's own user, e.g. crm-sync. It never signs in."
    )
    roles = forms.MultipleChoiceField(
        choices=[(r, r) for r in ROLE_NAMES],
        widget=forms.CheckboxSelectMultiple,
        help_text="What its tokens may do; at most your own roles unless you are an admin.",
    )

    class Meta:
        model = ServiceAccount
        fields = ["username", "roles", "owner", "description"]
        help_texts = {"owner": "The person who answers for the integration (default: you)."}

    request: HttpRequest | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].required = False

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if User.objects.filter(username=username).exists():
            raise forms.ValidationError(f"The username {username!r} is taken; choose another.")
        return username

    def clean_roles(self) -> list[str]:
        roles = list(self.cleaned_data.get("roles") or [])
        user = getattr(self.request, "user", None)
        if user is not None and not user.is_superuser:
            mine = set(user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))
            beyond = sorted(set(roles) - mine)
            if "admin" not in mine and beyond:
                raise forms.ValidationError(
                    f"You may give a service account only roles you hold; not {', '.join(beyond)}. "
                    "Ask an admin to create it."
                )
        return roles


@admin.register(ServiceAccount)
class ServiceAccountAdmin(ServiceAdminMixin, NoDeleteMixin, SimpleHistoryAdmin):
    list_display = ["user", "owner", "roles", "tokens", "description", "created_at"]
    list_filter = [("owner", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "owner__username", "description"]
    list_select_related = ["user", "owner"]
    date_hierarchy = "created_at"
    readonly_fields = ["user", "owner", "roles", "tokens", "description", "created_at"]
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ServiceAccount]:
        # Active: neither revoked nor expired (as the token list's "state" filter says).
        active = Q(user__api_tokens__revoked_at__isnull=True) & (
            Q(user__api_tokens__expires_at__isnull=True) | Q(user__api_tokens__expires_at__gt=timezone.now())
        )
        return (
            super()
            .get_queryset(request)
            .annotate(token_count=Count("user__api_tokens", filter=active))
            .prefetch_related("user__groups")
        )

    @admin.display(description="roles")
    def roles(self, account: ServiceAccount) -> str:
        return ", ".join(sorted(g.name for g in account.user.groups.all() if g.name in ROLE_NAMES)) or "—"

    @admin.display(description="active tokens")
    def tokens(self, account: ServiceAccount) -> int:
        return getattr(account, "token_count", 0)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Created through the service; its roles and tokens are changed on the user and token pages.
        return False

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        form = type("BoundServiceAccountCreateForm", (ServiceAccountCreateForm,), {"request": request})
        kwargs["form"] = form
        kwargs["fields"] = ServiceAccountCreateForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(ServiceAccountCreateForm.Meta.fields) if obj is None else list(self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: ServiceAccount, form: Any, change: bool) -> None:
        data = form.cleaned_data
        actor = admin_actor(request)
        account = services.service_account_create(
            actor=actor,
            username=data["username"],
            roles=list(data["roles"]),
            description=data.get("description", ""),
            owner=data.get("owner") or actor.user,
        )
        # The page that follows (and the admin's log) needs the created object.
        obj.pk, obj.user, obj.owner, obj.created_at = account.pk, account.user, account.owner, account.created_at

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None  # service_account_create set everything
