"""The tables of integrations, and the topic package that writes each:

- Job: an asynchronous unit of work with state and progress (integrations/jobs/);
- WebhookSubscription, WebhookDelivery (one event for one subscriber) and DeliveryAttempt
  (the delivery log) (integrations/webhooks/; the relay in integrations/outbox/ creates
  the deliveries);
- DeadLetter: work that failed after its last retry, of any kind — webhook deliveries,
  outbox dispatches, destination pushes (integrations/webhooks/dead_letters.py);
- Destination (a configured downstream tool) and DestinationPush (work for one)
  (integrations/destinations/).

The outbox of domain events itself is governance's (governance.models.OutboxEvent): every
app writes to it; integrations relays it to webhook deliveries.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from governance.models import Environment

# --- jobs -----------------------------------------------------------------------


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIALLY_SUCCEEDED = "partially_succeeded", "Partially succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Job(models.Model):
    """An asynchronous unit of work with state and progress (publish, send, export, push).

    Claimed with a conditional UPDATE (queued → running) so two workers never run one job;
    progress is recorded per batch so a killed worker resumes instead of starting over.
    """

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="jobs")
    kind = models.CharField(max_length=48)
    state = models.CharField(max_length=24, choices=JobState.choices, default=JobState.QUEUED)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    params = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=dict, blank=True, help_text='e.g. {"done": 3, "total": 10}')
    result = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["environment", "state", "id"], name="job_env_state"),
            models.Index(fields=["target_type", "target_id"], name="job_target"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"


# --- webhooks -------------------------------------------------------------------


class SubscriptionState(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


class WebhookSubscription(models.Model):
    """Domain events of chosen types, POSTed signed to a URL."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="webhooks")
    url = models.URLField(max_length=500)
    event_types = models.JSONField(default=list, help_text='Domain event types, e.g. ["audience.published"].')
    description = models.CharField(max_length=200, blank=True)
    secret_encrypted = models.TextField(help_text="The signing secret, encrypted; shown once at creation.")
    state = models.CharField(max_length=8, choices=SubscriptionState.choices, default=SubscriptionState.ACTIVE)
    paused_reason = models.CharField(max_length=300, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords(excluded_fields=["secret_encrypted", "failing_since"])

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.event_types)})"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    DEAD = "dead", "Dead-lettered"
    DISCARDED = "discarded", "Discarded"


class WebhookDelivery(models.Model):
    """One event for one subscriber; retried with backoff until delivered or dead-lettered."""

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey("governance.OutboxEvent", on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=12, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["subscription", "event"], name="one_delivery_per_subscriber"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(state="pending"), name="delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} → {self.subscription.url} ({self.state})"


class DeliveryAttempt(models.Model):
    """The delivery log: one row per HTTP attempt."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    attempt = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"attempt {self.attempt}: {self.status_code or self.error[:40]}"


class DeadLetter(models.Model):
    """Work that failed after its last retry, kept with its last error until an engineer
    replays or discards it (admin and API)."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="dead_letters")
    kind = models.CharField(max_length=32, help_text="webhook_delivery, outbox_dispatch, destination_push")
    reference_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=12, blank=True, help_text="replayed or discarded")
    resolved_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["environment", "resolved_at"], name="deadletter_open")]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference_id}: {self.last_error[:60]}"


# --- destinations ---------------------------------------------------------------


class Destination(models.Model):
    """A configured downstream tool: adapter + config + credentials (never shown back)."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="destinations")
    name = models.CharField(max_length=100)
    adapter = models.CharField(max_length=32, help_text="webhook, file, crm, engagement")
    config = models.JSONField(default=dict, blank=True)
    credentials_encrypted = models.TextField(blank=True)
    credentials_env = models.CharField(
        max_length=100, blank=True, help_text="Name of an environment variable holding the credentials instead."
    )
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    history = HistoricalRecords(
        excluded_fields=["credentials_encrypted", "last_success_at", "last_failure_at", "last_error"]
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="destination_name_per_env")]

    def __str__(self) -> str:
        return f"{self.name} ({self.adapter})"


class PushState(models.TextChoices):
    PENDING = "pending", "Pending"
    DEFERRED = "deferred", "Deferred"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class DestinationPush(models.Model):
    """Work for one destination (members added/removed, or a send batch). Deferred, not
    dropped, while the destination's circuit breaker is open."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="pushes")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="pushes")
    kind = models.CharField(max_length=16, help_text="members or send")
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=12, choices=PushState.choices, default=PushState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "destination pushes"
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(state__in=["pending", "deferred"]), name="push_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.destination} ({self.state})"
