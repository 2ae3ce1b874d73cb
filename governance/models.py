"""Environments, API tokens, audit events, approvals, quotas, flags and the outbox: who may act
where, what they did, and the domain events their changes emit."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords


class DataKind(models.TextChoices):
    SYNTHETIC = "synthetic", "Synthetic"
    CONSTRAINED = "constrained", "Constrained"
    REAL = "real", "Real"


def default_change_windows() -> list[dict[str, Any]]:
    return []


class Environment(models.Model):
    """A space with its own data, tokens and policies: sandbox, pilot, production, …"""

    slug = models.SlugField(max_length=32, unique=True, help_text="Lower-case name used in token prefixes.")
    name = models.CharField(max_length=64)
    purpose = models.TextField(blank=True)
    data_kind = models.CharField(max_length=16, choices=DataKind.choices, default=DataKind.SYNTHETIC)
    time_zone = models.CharField(max_length=64, default="UTC")
    change_windows = models.JSONField(
        default=default_change_windows,
        blank=True,
        help_text='Hours in which production changes may run, e.g. [{"days": [0,1,2,3], "start": "09:00", '
        '"end": "17:00"}] (0 = Monday). Empty: any time.',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_sandbox(self) -> bool:
        return self.data_kind == DataKind.SYNTHETIC


def hash_token(raw: str) -> str:
    # Tokens carry 256 bits of randomness, so an unsalted SHA-256 is enough to make the
    # stored value useless to a reader of the database (as GitHub and Stripe do).
    return hashlib.sha256(raw.encode()).hexdigest()


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"
    PUBLISH = "publish", "Publish and activate"
    EXPORT = "export", "Export"
    INGEST = "ingest", "Ingest profiles, events and consent"
    ADMIN = "admin", "Administer tokens, destinations and webhooks"


def default_scopes() -> list[str]:
    return [TokenScope.READ]


class ServiceAccount(models.Model):
    """An integration that holds tokens of its own, with a person who answers for it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="service_account")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_service_accounts")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"{self.user} (service account, owner {self.owner})"


class ApiToken(models.Model):
    """A secret bound to one environment; only its hash is stored, the secret is shown once."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="tokens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    # The person who answers for the token: its user, or a service account's owner.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="owned_tokens"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=default_scopes, help_text="Any of read, write, publish, export, ingest, admin.")
    rate_limits = models.JSONField(
        default=dict, blank=True, help_text='Per rate class overrides in requests per minute, e.g. {"bulk": 5}.'
    )
    prefix = models.CharField(max_length=48, help_text="The first characters of the secret, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(excluded_fields=["last_used_at"])

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @staticmethod
    def generate_secret(environment: Environment) -> str:
        return f"mk_{environment.slug}_{secrets.token_urlsafe(32)}"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @classmethod
    def default_expiry(cls) -> Any:
        return timezone.now() + timedelta(days=settings.API_TOKEN_DEFAULT_DAYS)


class Door(models.TextChoices):
    API = "api", "API"
    PORTAL = "portal", "Portal"
    ADMIN = "admin", "Admin"
    TASK = "task", "Task"
    CLI = "cli", "Command line"


class Outcome(models.TextChoices):
    ALLOWED = "allowed", "Allowed"
    DENIED = "denied", "Denied"
    FAILED = "failed", "Failed"
    APPROVAL_REQUESTED = "approval_requested", "Approval requested"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        from governance.audit.errors import AppendOnly

        raise AppendOnly("Audit events are never changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        from governance.audit.errors import AppendOnly

        raise AppendOnly("Audit events are never deleted.")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        from governance.audit.errors import AppendOnly

        raise AppendOnly("Audit events are never changed.")


class AuditEvent(models.Model):
    """The record of one action: who, what, when, through which door, with what outcome.

    Append-only: the model refuses updates and deletes; on PostgreSQL a trigger refuses
    UPDATE, DELETE and TRUNCATE too (migration 0004).
    """

    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="audit_events", null=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)
    token = models.ForeignKey(ApiToken, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    door = models.CharField(max_length=8, choices=Door.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=24, choices=Outcome.choices)
    reasons = models.JSONField(default=list, blank=True)
    changes = models.JSONField(default=dict, blank=True, help_text="A before/after summary.")
    approval_refs = models.JSONField(default=list, blank=True)
    # Hash chain per environment: SHA-256 over the row's canonical JSON and prev_hash.
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["environment", "-id"], name="audit_env_id"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
            models.Index(fields=["actor_user", "-id"], name="audit_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            from governance.audit.errors import AppendOnly

            raise AppendOnly("Audit events are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        from governance.audit.errors import AppendOnly

        raise AppendOnly("Audit events are never deleted.")


# --- approvals ------------------------------------------------------------------


class ApprovalPolicy(models.Model):
    """When an action needs approval in an environment, and from whom.

    `steps` lists one set of roles per approval: [["approver"], ["developer", "admin"]]
    asks for two distinct people, one approver and one developer or admin. A policy
    with a `metric` applies only when the action's metric exceeds `threshold`; of the
    policies that apply, the one asking for most approvals wins.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="approval_policies")
    action = models.CharField(max_length=64)
    metric = models.CharField(max_length=32, blank=True, help_text="e.g. reach, recipients; empty: always.")
    threshold = models.PositiveBigIntegerField(null=True, blank=True)
    steps = models.JSONField(help_text='One list of roles per approval, e.g. [["approver"], ["developer", "admin"]].')
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["environment", "action", "threshold"]
        verbose_name_plural = "approval policies"

    def __str__(self) -> str:
        cond = f" when {self.metric} > {self.threshold:,}" if self.metric and self.threshold is not None else ""
        return f"{self.environment}: {self.action}{cond} → {len(self.steps)} approval(s)"


class ApprovalState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    EXECUTED = "executed", "Executed"
    FAILED = "failed", "Failed"


class ApprovalRequest(models.Model):
    """A pending action that needs other people's votes before it runs."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="approval_requests")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=200, blank=True)
    summary = models.CharField(max_length=300, help_text="The request in business terms.")
    change = models.JSONField(default=dict, help_text="A snapshot of the intended change.")
    target_fingerprint = models.CharField(max_length=64, blank=True)
    policy = models.JSONField(default=dict, help_text="A snapshot of the policy that asked for approval.")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_requests")
    requester_token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    requester_door = models.CharField(max_length=8, choices=Door.choices, default=Door.API)
    state = models.CharField(max_length=16, choices=ApprovalState.choices, default=ApprovalState.PENDING)
    required = models.PositiveSmallIntegerField(default=1)
    is_stale = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["environment", "state"], name="approval_env_state"),
            models.Index(fields=["target_type", "target_id", "state"], name="approval_target"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.summary} ({self.state})"


class VoteDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class ApprovalVote(models.Model):
    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="votes")
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_votes")
    decision = models.CharField(max_length=8, choices=VoteDecision.choices)
    role = models.CharField(max_length=32, blank=True, help_text="The role the vote counts for.")
    comment = models.TextField(blank=True)
    counts = models.BooleanField(default=True, help_text="False once the target changed under the request.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["request", "voter"], name="one_vote_per_person")]

    def __str__(self) -> str:
        return f"{self.voter} {self.decision} #{self.request_id}"


# --- quotas and idempotency -----------------------------------------------------


class QuotaPeriod(models.TextChoices):
    DAY = "day", "Day"
    MONTH = "month", "Month"


class QuotaPolicy(models.Model):
    """How much of an action one may do per period. The most specific policy wins:
    token, then user, then role, then the default (no role, user or token)."""

    name = models.SlugField(max_length=64, help_text="e.g. export-masked, export-pii, publish.")
    action = models.CharField(max_length=64, help_text="The policy action counted, e.g. export.create.")
    description = models.CharField(max_length=200, blank=True)
    period = models.CharField(max_length=8, choices=QuotaPeriod.choices, default=QuotaPeriod.MONTH)
    limit = models.PositiveIntegerField()
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    role = models.CharField(max_length=32, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "quota policies"

    def __str__(self) -> str:
        who = self.token or self.user or self.role or "everyone"
        return f"{self.name}: {self.limit}/{self.period} for {who}"


class QuotaUsage(models.Model):
    quota = models.SlugField(max_length=64)
    subject = models.CharField(max_length=64, help_text="user:<id> or token:<id>")
    period_start = models.DateTimeField()
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["quota", "subject", "period_start"], name="one_usage_row_per_period")
        ]

    def __str__(self) -> str:
        return f"{self.quota} {self.subject} {self.period_start:%Y-%m-%d}: {self.used}"


class IdempotencyState(models.TextChoices):
    IN_FLIGHT = "in_flight", "In flight"
    COMPLETED = "completed", "Completed"


class IdempotencyRecord(models.Model):
    """The first response to a POST with an Idempotency-Key, replayed for 24 hours."""

    owner = models.CharField(max_length=64, help_text="token:<id> or user:<id>")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    state = models.CharField(max_length=16, choices=IdempotencyState.choices, default=IdempotencyState.IN_FLIGHT)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="one_key_per_owner")]
        indexes = [models.Index(fields=["expires_at"], name="idempotency_expiry")]

    def __str__(self) -> str:
        return f"{self.owner} {self.key} ({self.state})"


# --- feature flags --------------------------------------------------------------


class FlagMeta(models.Model):
    """What waffle does not keep about a flag: what it is for, who owns it, and whether
    switching it off changes what customers see (then it needs two approvals)."""

    flag = models.OneToOneField("waffle.Flag", on_delete=models.CASCADE, related_name="meta")
    description = models.TextField()
    owner = models.CharField(max_length=100, help_text="The team or person who answers for the flag.")
    affects_personalization = models.BooleanField(default=False)
    on_in_sandbox = models.BooleanField(
        default=False,
        help_text="On for everyone in sandbox environments, whatever the rollout says (unless Everyone is No).",
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = "flag metadata"
        verbose_name_plural = "flag metadata"

    def __str__(self) -> str:
        return f"{self.flag.name}: {self.description[:60]}"


# --- the outbox -----------------------------------------------------------------


class OutboxEvent(models.Model):
    """A domain event (`audience.published`, `consent.updated`, …) awaiting or past dispatch."""

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="outbox_events")
    type = models.CharField(max_length=64)
    aggregate_type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=64)
    occurred_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        # The table keeps the name it was created with in integrations (migration 0005
        # moved the model to governance without touching the database).
        db_table = "integrations_outboxevent"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["environment", "-id"], name="outbox_env_id"),
            models.Index(fields=["environment", "type", "-id"], name="outbox_env_type"),
            # The relay scans only what is still to send.
            models.Index(fields=["id"], condition=Q(dispatched_at__isnull=True), name="outbox_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"

    @property
    def public_id(self) -> str:
        return f"evt_{self.event_id.hex}"

    def as_public(self) -> dict:
        return {
            "id": self.public_id,
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "environment": self.environment.slug,
            "data": self.data,
        }
