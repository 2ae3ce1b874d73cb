"""Admin pages of approval policies (saved through
governance.configuration.services.approval_policy_save) and approval requests (read-only;
voted on through governance.approvals.services, as in the portal and the API)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from simple_history.admin import SimpleHistoryAdmin

from governance.approvals import registry
from governance.approvals import services as approval_services
from governance.configuration import services as config_services
from governance.configuration import validators
from governance.configuration.errors import InvalidConfig
from governance.configuration.selectors import approval_actions
from governance.models import ApprovalPolicy, ApprovalRequest, ApprovalState, ApprovalVote
from marketerapi.admin.large_tables import LargeTableMixin
from marketerapi.admin.mixins import NoDeleteMixin, ReadOnlyAdminMixin, ServiceAdminMixin, problem_text
from marketerapi.admin.site import admin_actor
from marketerapi.problems import ApplicationError


def _json_help(example: Any) -> str:
    return f"JSON, e.g. {json.dumps(example)}"


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
        self.fields["action"].help_text = "One of: " + ", ".join(approval_actions()) + "."
        # An empty list is "no value" to a form; say what is wanted instead of "required".
        self.fields["steps"].error_messages["required"] = (
            'Steps must be a list with one list of role names per approval, e.g. [["approver"]].'
        )

    def clean_steps(self) -> list[list[str]]:
        try:
            return validators.check_steps(self.cleaned_data.get("steps"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_steps") from None

    def clean_action(self) -> str:
        try:
            return validators.check_approval_action(self.cleaned_data.get("action"))
        except InvalidConfig as exc:
            raise forms.ValidationError(str(exc), code="invalid_action") from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        try:
            validators.check_condition(data.get("metric") or "", data.get("threshold"))
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


VOTE_FIELDS = ("voter", "decision", "role", "counts", "comment", "created_at")


class ApprovalVoteInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Votes are cast through the services (the actions below, the portal, the API)."""

    model = ApprovalVote
    fields = VOTE_FIELDS
    readonly_fields = VOTE_FIELDS
    extra = 0
    can_delete = False


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
    """The actions that can ask for approval (governance.configuration.selectors.approval_actions: a small
    table), not a SELECT DISTINCT over every request ever filed."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        actions = set(approval_actions())
        chosen = self.value()
        if chosen:
            actions.add(chosen)
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
    readonly_fields = ["what_changed"]

    @admin.display(description="what changed since it was filed")
    def what_changed(self, obj: ApprovalRequest) -> str:
        """A stale open request: what its target looks like now against what it shows."""
        if obj.state not in (ApprovalState.PENDING, ApprovalState.APPROVED) or obj.executed_at is not None:
            superseded = (obj.result or {}).get("superseded_by")
            return f"Replaced by request {superseded}." if superseded else "—"
        target = registry.load_target(obj)
        current = registry.current_fingerprint(obj, target)
        if current is None or current == obj.target_fingerprint:
            return "Nothing: the target is as filed."
        changes = registry.what_changed(obj, target)
        if not changes:
            return "The target changed; the request cannot be approved and must be filed again."
        return "; ".join(
            f"{c['field']}: requested {json.dumps(c['requested'], default=str)[:300]}, "
            f"now {json.dumps(c['now'], default=str)[:300]}"
            for c in changes
        )

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
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
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
