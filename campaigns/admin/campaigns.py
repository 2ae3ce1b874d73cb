"""The campaigns admin: campaigns (read-only, with the lifecycle as actions) and the manual
review queue (retry, cancel) — every action through the same services as the API."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from campaigns.models import Campaign, ReviewItem
from campaigns.review import services as review
from campaigns.sending import services as sending
from governance.actors import Actor
from marketerapi.admin.mixins import ReadOnlyAdminMixin, for_each


@admin.register(Campaign)
class CampaignAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = ["name", "environment", "owner_team", "channel", "state", "audience", "destination", "schedule_at"]
    list_filter = ["environment", "state", "channel"]
    search_fields = ["name"]
    list_select_related = ["environment", "owner_team", "audience", "destination"]
    actions = ["activate", "pause", "resume", "cancel"]
    readonly_fields = (
        "name",
        "environment",
        "owner_team",
        "purpose",
        "channel",
        "audience",
        "version",
        "destination",
        "assets",
        "schedule_at",
        "frequency_cap",
        "frequency_period_days",
        "state",
        "job",
        "created_by",
        "created_at",
        "activated_at",
        "finished_at",
    )
    fields = readonly_fields

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("campaigns.activate_campaign")

    @admin.action(description="Activate (checks readiness; may ask for approval)", permissions=["operate"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        def call(actor: Actor, campaign: Campaign) -> str:
            outcome = sending.campaign_activate(actor=actor, campaign=campaign)
            if outcome.approval is not None:
                return f"{campaign.name}: waits for approval (request {outcome.approval.pk})."
            return f"{campaign.name}: {outcome.result.state if outcome.result else 'activated'}."

        for_each(self, request, queryset.select_related("environment", "audience", "destination"), call)

    @admin.action(description="Pause", permissions=["operate"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for_each(
            self,
            request,
            queryset.select_related("environment"),
            lambda actor, c: f"{sending.campaign_pause(actor=actor, campaign=c).name}: paused.",
        )

    @admin.action(description="Resume", permissions=["operate"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for_each(
            self,
            request,
            queryset.select_related("environment"),
            lambda actor, c: f"{sending.campaign_resume(actor=actor, campaign=c).name}: sending again.",
        )

    @admin.action(description="Cancel", permissions=["operate"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for_each(
            self,
            request,
            queryset.select_related("environment"),
            lambda actor, c: f"{sending.campaign_cancel(actor=actor, campaign=c).name}: cancelled.",
        )


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The manual review queue: sends a vendor outage left waiting (the same queue as
    GET /api/v1/review-items/)."""

    list_display = ["id", "campaign", "destination", "recipients", "why", "state", "since"]
    list_filter = ["environment", "state"]
    list_select_related = ["campaign", "destination"]
    actions = ["retry", "cancel"]
    readonly_fields = (
        "environment",
        "campaign",
        "destination",
        "recipients",
        "why",
        "state",
        "since",
        "resolved_at",
        "resolved_by",
    )
    fields = readonly_fields

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("campaigns.activate_campaign")

    @admin.action(description="Retry the waiting sends now", permissions=["operate"])
    def retry(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        def call(actor: Actor, item: ReviewItem) -> str:
            review.review_item_retry(actor=actor, item=item)
            return f"{item.campaign}: {item.recipients} send(s) queued again."

        for_each(self, request, queryset.select_related("environment", "campaign"), call)

    @admin.action(description="Cancel the waiting sends", permissions=["operate"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        def call(actor: Actor, item: ReviewItem) -> str:
            review.review_item_cancel(actor=actor, item=item)
            return f"{item.campaign}: waiting sends cancelled."

        for_each(self, request, queryset.select_related("environment", "campaign"), call)
