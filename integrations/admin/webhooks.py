"""Admin pages for webhooks: subscriptions (pause, resume), deliveries with their log, and
the dead-letter list with replay and discard.

Nothing here writes by itself: the actions call integrations/webhooks/services.py
with the signed-in user as actor through the admin door, so the policy engine and the
audit trail see them like any other change. Subscriptions are created through the API,
which shows the signing secret once; the admin never shows it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from governance.actors import Actor
from integrations.admin.events import EventIdSearchMixin, EventTypeFilter
from integrations.models import DeadLetter, DeliveryAttempt, SubscriptionState, WebhookDelivery, WebhookSubscription
from integrations.webhooks import services
from integrations.webhooks.dead_letters import DEAD_LETTER_KINDS
from marketerapi.admin.large_tables import LargeTableMixin
from marketerapi.admin.mixins import ReadOnlyAdminMixin, for_each


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = ["url", "environment", "event_types", "state", "paused_reason", "failing_since", "created_at"]
    list_filter = ["environment", "state", ("failing_since", admin.EmptyFieldListFilter)]
    search_fields = ["url", "description"]
    list_select_related = ["environment"]
    date_hierarchy = "created_at"
    # Everything but the encrypted secret.
    readonly_fields = (
        "url",
        "environment",
        "event_types",
        "description",
        "state",
        "paused_reason",
        "failing_since",
        "created_by",
        "created_at",
    )
    fields = readonly_fields
    actions = ["pause", "resume"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("integrations.view_webhooksubscription")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.change_webhooksubscription")

    @admin.action(description="Pause the selected subscriptions", permissions=["pause"])
    def pause(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        def call(actor: Actor, sub: WebhookSubscription) -> None:
            services.webhook_update(actor=actor, subscription=sub, state=str(SubscriptionState.PAUSED))

        for_each(
            self,
            request,
            queryset.select_related("environment"),
            call,
            done="Paused {} subscription(s); their deliveries are held.",
        )

    @admin.action(description="Resume (activate) the selected subscriptions", permissions=["pause"])
    def resume(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        def call(actor: Actor, sub: WebhookSubscription) -> None:
            services.webhook_update(actor=actor, subscription=sub, state=str(SubscriptionState.ACTIVE))

        for_each(
            self,
            request,
            queryset.select_related("environment"),
            call,
            done="Resumed {} subscription(s); held deliveries are sent now.",
        )


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    readonly_fields = ("attempt", "attempted_at", "status_code", "latency_ms", "error")
    fields = readonly_fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryEventTypeFilter(EventTypeFilter):
    title = "event type"
    parameter_name = "event_type"
    field = "event__type"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(EventIdSearchMixin, ReadOnlyAdminMixin, LargeTableMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "event",
        "subscription",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "created_at",
    ]
    list_filter = ["state", "subscription__environment", DeliveryEventTypeFilter]
    search_fields = ["=event__event_id", "subscription__url"]
    search_help_text = "An event's exact uuid or public id (evt_…), or part of the subscription's URL."
    list_select_related = ["event", "subscription"]
    date_hierarchy = "created_at"

    readonly_fields = (
        "subscription",
        "event",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_latency_ms",
        "last_error",
        "created_at",
        "delivered_at",
    )
    fields = readonly_fields
    inlines = [DeliveryAttemptInline]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("integrations.view_webhooksubscription")


class DeadLetterKindFilter(admin.SimpleListFilter):
    """The kinds of work that can be dead-lettered (integrations/webhooks/dead_letters.py)."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(k, k) for k in sorted(DEAD_LETTER_KINDS)]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(kind=self.value()) if self.value() else queryset


class ResolutionFilter(admin.SimpleListFilter):
    title = "resolution"
    parameter_name = "resolution"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("replayed", "replayed"), ("discarded", "discarded")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(resolution=self.value()) if self.value() else queryset


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, LargeTableMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "environment",
        "reference_id",
        "attempts",
        "short_error",
        "created_at",
        "resolution",
        "resolved_by",
    ]
    list_filter = ["environment", DeadLetterKindFilter, ("resolved_at", admin.EmptyFieldListFilter), ResolutionFilter]
    search_fields = ["=reference_id", "last_error"]
    search_help_text = "An exact reference id (the delivery, event or push), or part of the last error."
    list_select_related = ["environment", "resolved_by"]
    date_hierarchy = "created_at"
    readonly_fields = (
        "kind",
        "environment",
        "reference_id",
        "payload",
        "attempts",
        "last_error",
        "created_at",
        "resolved_at",
        "resolution",
        "resolved_by",
    )
    fields = readonly_fields
    actions = ["replay", "discard"]

    @admin.display(description="last error")
    def short_error(self, letter: DeadLetter) -> str:
        return letter.last_error[:80]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("integrations.view_deadletter")

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.change_deadletter")

    @admin.action(description="Replay the selected dead letters", permissions=["resolve"])
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        for_each(
            self,
            request,
            queryset.select_related("environment"),
            lambda actor, letter: services.dead_letter_replay(actor=actor, dead_letter=letter).detail,
            done="Replayed {} dead letter(s).",
        )

    @admin.action(description="Discard the selected dead letters", permissions=["resolve"])
    def discard(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        for_each(
            self,
            request,
            queryset.select_related("environment"),
            lambda actor, letter: services.dead_letter_discard(actor=actor, dead_letter=letter).detail,
            done="Discarded {} dead letter(s).",
        )
