"""Admin pages for environments, API tokens and the audit trail.

Tokens are issued through the API or `issue_token` (the secret is shown once there);
here they can only be seen and revoked, and their hash is never shown. Audit events are
append-only: the admin may read and filter them, nothing else.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from governance import services
from governance.actors import Actor, client_ip
from governance.models import ApiToken, AuditEvent, Door, Environment
from marketerapi.problems import ApplicationError


@admin.register(Environment)
class EnvironmentAdmin(SimpleHistoryAdmin):
    list_display = ["slug", "name", "data_kind", "time_zone", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "environment",
        "user",
        "owner",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["environment", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["environment", "user", "owner"]
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
            actor = Actor(
                user=request.user,
                environment=token.environment,
                door=Door.ADMIN,
                ip=client_ip(request),
                request_id=getattr(request, "request_id", ""),
            )
            try:
                services.token_revoke(actor=actor, token=token)
                revoked += 1
            except ApplicationError as exc:
                refused.append(f"{token.prefix}…: {exc.detail or exc.title}")
        if revoked:
            self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
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
    list_filter = ["environment", "action", "outcome", "door"]
    search_fields = ["=request_id", "=actor_label", "=target_id"]
    search_help_text = "An exact request id, actor or target id."
    list_select_related = ["environment"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
