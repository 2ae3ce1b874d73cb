"""The outbox: domain events written in the same transaction as the change they describe."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from governance.models import Environment


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
