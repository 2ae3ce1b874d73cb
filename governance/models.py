"""Environments, API tokens and audit events: who may act where, and what they did."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
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


class ApiToken(models.Model):
    """A secret bound to one environment; only its hash is stored, the secret is shown once."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="tokens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
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


class AuditEvent(models.Model):
    """The record of one action: who, what, when, through which door, with what outcome."""

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

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["environment", "-id"], name="audit_env_id"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
            models.Index(fields=["actor_user", "-id"], name="audit_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.outcome}"
