"""The admin site of platform engineers (docs/admin.md): roles and teams, people, tokens,
service accounts, approval policies, environments and their change windows, quotas,
feature flags with their metadata, approval requests and the audit trail.

Nothing here writes a governed object by itself. Every change goes through a service
(governance.services, governance.config_services, governance.flag_services) with the
signed-in person as actor through the `admin` door, in the object's environment (or, for
objects without one, the environment the person switched to, default sandbox): the
policy engine decides and the service writes the audit event. The forms run the same
validators as the services, so a bad value is refused on its field with the sentence the
service would raise; what a form cannot foresee (a refusal by the policy, a race) comes
back as an error message and nothing is saved.

Tokens are issued through the API or `issue_token` (the secret is shown once there);
here they are seen and revoked, and their hash is never shown. Audit events are
append-only: the admin may read and filter them, nothing else.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html_join
from simple_history.admin import SimpleHistoryAdmin
from waffle import admin as waffle_admin
from waffle.models import Flag, Sample, Switch

from governance import policy
from governance.access import services
from governance.access.selectors import SESSION_ENVIRONMENT_KEY
from governance.approvals import services as approval_services
from governance.configuration import services as config_services
from governance.configuration.services import InvalidConfig
from governance.flags import services as flag_services
from governance.models import (
    ApiToken,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalVote,
    AuditEvent,
    Environment,
    FlagMeta,
    QuotaPolicy,
    QuotaUsage,
    ServiceAccount,
)
from governance.roles import ROLE_NAMES
from marketerapi.admin.large_tables import IndexedValuesFilter, LargeTableMixin
from marketerapi.admin.mixins import NoDeleteMixin, ReadOnlyAdminMixin, ServiceAdminMixin, problem_text
from marketerapi.admin.site import admin_actor
from marketerapi.problems import ApplicationError


def _json_help(example: Any) -> str:
    return f"JSON, e.g. {json.dumps(example)}"


# --- environments ----------------------------------------------------------------------------


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
            return config_services.check_time_zone(self.cleaned_data.get("time_zone"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_time_zone") from None

    def clean_change_windows(self) -> Any:
        try:
            return config_services.check_change_windows(self.cleaned_data.get("change_windows"))
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


# --- tokens and service accounts -----------------------------------------------------------


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


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
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
    # Everything but the hash: the hash is never shown, not even to admins.
    fields = [
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
    ]
    readonly_fields = fields
    actions = ["revoke"]

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return "revoked" if token.is_revoked else "expired" if token.is_expired else "active"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Audit events point at tokens; a token is revoked, never deleted.
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("governance.delete_apitoken")

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked, refused = 0, []
        for token in queryset.select_related("environment"):
            try:
                services.token_revoke(actor=admin_actor(request, token.environment), token=token)
                revoked += 1
            except ApplicationError as exc:
                refused.append(f"{token.prefix}…: {problem_text(exc)}")
        if revoked:
            self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)


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
        account = services.service_account_create(
            actor=admin_actor(request),
            username=data["username"],
            roles=list(data["roles"]),
            description=data.get("description", ""),
            owner=data.get("owner") or request.user,
        )
        # The page that follows (and the admin's log) needs the created object.
        obj.pk, obj.user, obj.owner, obj.created_at = account.pk, account.user, account.owner, account.created_at

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None  # service_account_create set everything


# --- approval policies and requests -----------------------------------------------------------


class ApprovalPolicyForm(forms.ModelForm):
    class Meta:
        model = ApprovalPolicy
        fields = ["environment", "action", "metric", "threshold", "steps", "description", "is_active"]
        help_texts = {
            "steps": "One list of roles per approval; each approval comes from a different person holding one of "
            "the step's roles. " + _json_help([["approver"], ["developer", "admin"]]) + " asks for two.",
            "metric": "reach (audience publishes) or recipients (campaign activations); empty: always applies.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].help_text = "One of: " + ", ".join(config_services.approval_actions()) + "."
        # An empty list is "no value" to a form; say what is wanted instead of "required".
        self.fields["steps"].error_messages["required"] = (
            'Steps must be a list with one list of role names per approval, e.g. [["approver"]].'
        )

    def clean_steps(self) -> list[list[str]]:
        try:
            return config_services.check_steps(self.cleaned_data.get("steps"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_steps") from None

    def clean_action(self) -> str:
        try:
            return config_services.check_approval_action(self.cleaned_data.get("action"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_action") from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        try:
            config_services.check_condition(data.get("metric") or "", data.get("threshold"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_condition") from None
        return data


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(ServiceAdminMixin, NoDeleteMixin, SimpleHistoryAdmin):
    form = ApprovalPolicyForm
    list_display = ["environment", "action", "condition", "steps_text", "description", "is_active"]
    list_filter = ["environment", "action", "is_active"]
    search_fields = ["action", "description", "metric"]
    list_select_related = ["environment"]

    @admin.display(description="applies")
    def condition(self, obj: ApprovalPolicy) -> str:
        if obj.metric and obj.threshold is not None:
            return f"when {obj.metric} > {obj.threshold:,}"
        return "always"

    @admin.display(description="approvals")
    def steps_text(self, obj: ApprovalPolicy) -> str:
        return " then ".join(" or ".join(step) for step in obj.steps or [])

    def save_model(self, request: HttpRequest, obj: ApprovalPolicy, form: Any, change: bool) -> None:
        config_services.approval_policy_save(actor=admin_actor(request, obj.environment), approval_policy=obj)


class ApprovalVoteInline(admin.TabularInline):
    model = ApprovalVote
    fields = ["voter", "decision", "role", "counts", "comment", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class VoteForm(forms.Form):
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        required=False,
        help_text="The requester reads it. A rejection needs one.",
    )

    def __init__(self, *args: Any, reject: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["comment"].required = reject


class ApprovalActionFilter(admin.SimpleListFilter):
    """The actions that can ask for approval (config_services.approval_actions: a small
    table), not a SELECT DISTINCT over every request ever filed."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        actions = set(config_services.approval_actions())
        if self.value():
            actions.add(self.value())
        return [(a, a) for a in sorted(actions)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdminMixin, LargeTableMixin, SimpleHistoryAdmin):
    """Requests are filed by the services; here they are read, and voted on through the
    same services as the portal and the API (governance.approvals.services), which enforce
    the rules: never your own, distinct people, the policy's roles, a comment to reject."""

    list_display = ["id", "summary", "environment", "action", "state", "requester", "votes", "created_at", "expires_at"]
    list_filter = ["environment", "state", ApprovalActionFilter, "requester_door", "is_stale"]
    search_fields = ["=id", "summary", "target_label", "=target_id", "requester__username"]
    search_help_text = "An exact id or target id, or part of the summary, target or requester."
    list_select_related = ["environment", "requester"]
    date_hierarchy = "created_at"
    inlines = [ApprovalVoteInline]
    actions = ["approve", "reject"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalRequest]:
        return (
            super()
            .get_queryset(request)
            .annotate(approvals=Count("votes", filter=Q(votes__decision="approve", votes__counts=True)))
        )

    @admin.display(description="approvals")
    def votes(self, obj: ApprovalRequest) -> str:
        return f"{min(getattr(obj, 'approvals', 0), obj.required)} of {obj.required}"

    def has_vote_permission(self, request: HttpRequest) -> bool:
        # Whoever sees the requests may try; the service decides who may vote on which.
        return self.has_view_permission(request)

    @admin.action(description="Approve the selected requests", permissions=["vote"])
    def approve(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> TemplateResponse | None:
        return self._vote(request, queryset, reject=False)

    @admin.action(description="Reject the selected requests (with a comment)", permissions=["vote"])
    def reject(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> TemplateResponse | None:
        return self._vote(request, queryset, reject=True)

    def _vote(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest], reject: bool) -> TemplateResponse | None:
        """First a page asking for the comment, then one vote per request through the service,
        in the request's own environment (door `admin`)."""
        form = VoteForm(request.POST if "vote_comment_sent" in request.POST else None, reject=reject)
        requests = list(queryset.select_related("environment", "requester").order_by("id"))
        if not (form.is_bound and form.is_valid()):
            return TemplateResponse(
                request,
                "admin/marketerapi/approval_vote.html",
                {
                    **self.admin_site.each_context(request),
                    "title": ("Reject" if reject else "Approve") + f" {len(requests)} request(s)",
                    "opts": self.model._meta,
                    "requests": requests,
                    "form": form,
                    "action": "reject" if reject else "approve",
                    "verb": "Reject" if reject else "Approve",
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        comment = form.cleaned_data["comment"]
        for approval in requests:
            actor = admin_actor(request, approval.environment)
            try:
                if reject:
                    outcome = approval_services.approval_reject(actor=actor, request=approval, comment=comment)
                else:
                    outcome = approval_services.approval_approve(actor=actor, request=approval, comment=comment)
            except ApplicationError as exc:
                self.message_user(request, f"#{approval.pk}: {problem_text(exc)}", messages.WARNING)
                continue
            self.message_user(request, f"#{approval.pk}: {outcome.message}", messages.SUCCESS)
            for notice in outcome.notices:
                self.message_user(request, f"#{approval.pk}: {notice}", messages.WARNING)
        return None


# --- quotas -------------------------------------------------------------------------------


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
            return config_services.check_action_name(self.cleaned_data.get("action"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_action") from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        try:
            config_services.check_quota_subject(data.get("role") or "", data.get("user"), data.get("token"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_quota_subject") from None
        return data


@admin.register(QuotaPolicy)
class QuotaPolicyAdmin(ServiceAdminMixin, NoDeleteMixin, SimpleHistoryAdmin):
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

    def save_model(self, request: HttpRequest, obj: QuotaPolicy, form: Any, change: bool) -> None:
        config_services.quota_policy_save(actor=admin_actor(request, obj.environment), quota_policy=obj)


class QuotaNameFilter(IndexedValuesFilter):
    title = "quota"
    parameter_name = "quota"


@admin.register(QuotaUsage)
class QuotaUsageAdmin(ReadOnlyAdminMixin, LargeTableMixin, admin.ModelAdmin):
    """What each person or token used of each quota per period (kept by governance.quotas).
    The admin index lists the rows past 80 % of their limit (marketerapi/admin/dashboard.py)."""

    list_display = ["quota", "subject", "period_start", "used"]
    list_filter = [QuotaNameFilter]
    search_fields = ["=subject", "=quota"]
    search_help_text = "An exact subject (user:<id> or token:<id>, with @env<id> for one environment) or quota name."
    date_hierarchy = "period_start"


# --- feature flags ----------------------------------------------------------------------------


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


# --- roles and teams, people ------------------------------------------------------------------


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

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["name"]
        if obj.name in ROLE_NAMES:
            return ["name", "permission_list", "member_list"]
        return ["name", "member_list"]

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


class PersonChangeForm(DjangoUserAdmin.form):  # type: ignore[name-defined,misc]
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


class PersonAdmin(ServiceAdminMixin, NoDeleteMixin, DjangoUserAdmin):
    """People with their roles and teams. Roles, teams and the access flags change through
    config_services.user_access_set (audited); per-user permissions are not used — roles are."""

    form = PersonChangeForm
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
        stored = User.objects.get(pk=obj.pk)
        wanted = {"is_active": obj.is_active, "is_staff": obj.is_staff, "is_superuser": obj.is_superuser}
        # Names and email are saved as they are; roles, teams and access through the service.
        obj.is_active, obj.is_staff, obj.is_superuser = stored.is_active, stored.is_staff, stored.is_superuser
        obj.save()
        roles = list(form.cleaned_data.get("roles") or [])
        teams = list(form.cleaned_data.get("teams") or [])
        names = set(stored.groups.values_list("name", flat=True))
        unchanged = (
            set(roles) == names & set(ROLE_NAMES)
            and set(teams) == names - set(ROLE_NAMES)
            and all(getattr(stored, k) == v for k, v in wanted.items())
        )
        if not unchanged:
            config_services.user_access_set(actor=actor, user=obj, roles=roles, teams=teams, **wanted)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None  # groups are set by user_access_set; per-user permissions are not used


# django.contrib.auth registered its own pages for these; ours replace them.
for _model, _admin in ((Group, RoleAndTeamAdmin), (User, PersonAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)


# --- the audit trail ------------------------------------------------------------------------


class AuditActionFilter(IndexedValuesFilter):
    """The actions present in the trail, read from the `action` index one value at a time
    (a SELECT DISTINCT would read every event)."""

    title = "action"
    parameter_name = "action"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, LargeTableMixin, admin.ModelAdmin):
    list_display = [
        "occurred_at",
        "environment",
        "actor_label",
        "door",
        "action",
        "target_label",
        "outcome",
        "request_id",
    ]
    list_filter = ["environment", AuditActionFilter, "outcome", "door"]
    search_fields = ["=request_id", "=actor_label", "=target_id"]
    search_help_text = "An exact request id, actor or target id."
    list_select_related = ["environment"]
    date_hierarchy = "occurred_at"
