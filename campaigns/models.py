"""The campaigns app's tables (the code that writes each is named beside it):

- `Campaign`: a message on one channel to an audience's live version (frozen at
  activation), through a destination, with its assets, schedule and frequency cap —
  campaigns/definitions/services.py (create, edit, delete, share) and
  campaigns/sending/services.py (activate, pause, resume, cancel);
- `Send`: one recipient of one campaign, under UNIQUE(campaign, profile): frozen
  set-based at the start of sending (campaigns/sending/freeze.py), claimed before the
  vendor call and marked after it (campaigns/sending/runner.py);
- `ReviewItem`: sends a vendor outage left deferred after the retry budget, waiting for
  an operator to retry, cancel or hand over the payload — campaigns/review/services.py.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from governance.models import Environment

# The channels a campaign may send on (ads are audiences only: nothing is "sent" to an ad platform).
CAMPAIGN_CHANNELS = ("email", "sms", "push")


class CampaignChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"


class CampaignState(models.TextChoices):
    DRAFT = "draft", "Draft"
    READY = "ready", "Ready"
    PENDING_APPROVAL = "pending_approval", "Waiting for approval"
    SCHEDULED = "scheduled", "Scheduled"
    ACTIVE = "active", "Sending"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    PARTIALLY_SUCCEEDED = "partially_succeeded", "Partially succeeded"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


# States in which the definition may still change and the campaign may be activated.
EDITABLE_STATES = frozenset({CampaignState.DRAFT, CampaignState.READY})
FINAL_STATES = frozenset(
    {CampaignState.COMPLETED, CampaignState.PARTIALLY_SUCCEEDED, CampaignState.CANCELLED, CampaignState.FAILED}
)


class Campaign(models.Model):
    """A named, owned message to an audience: channel, assets, destination, schedule, cap.

    Owned by a team; everyone in the environment may view it, changing and activating it
    needs the team, a share of `change` (django-guardian) or the admin role.
    """

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=120)
    owner_team = models.ForeignKey("auth.Group", on_delete=models.PROTECT, related_name="owned_campaigns")
    purpose = models.CharField(max_length=200)
    channel = models.CharField(max_length=8, choices=CampaignChannel.choices)
    audience = models.ForeignKey("audiences.Audience", on_delete=models.PROTECT, related_name="campaigns")
    # The audience's live version when the campaign was activated: its recipients never move after.
    version = models.ForeignKey(
        "audiences.AudienceVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="campaigns"
    )
    destination = models.ForeignKey("integrations.Destination", on_delete=models.PROTECT, related_name="campaigns")
    assets = models.JSONField(default=dict, blank=True, help_text='{"subject", "body" with {{merge_fields}}, "sender"}')
    schedule_at = models.DateTimeField(null=True, blank=True, help_text="Empty: send when activated.")
    frequency_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many messages per profile per period, across campaigns."
    )
    frequency_period_days = models.PositiveIntegerField(default=7)
    state = models.CharField(max_length=24, choices=CampaignState.choices, default=CampaignState.DRAFT)
    job = models.ForeignKey("integrations.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("activate_campaign", "Can activate, pause, resume and cancel campaigns"),
            ("share_campaign", "Can share campaigns with users and teams"),
        ]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="campaign_name_per_env")]
        indexes = [
            models.Index(fields=["environment", "state"], name="campaign_env_state"),
            models.Index(fields=["state", "schedule_at"], name="campaign_due", condition=Q(state="scheduled")),
        ]

    def __str__(self) -> str:
        return self.name


class SendState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    DEFERRED = "deferred", "Deferred"


class SkipReason(models.TextChoices):
    NO_ADDRESS = "no_address", "No address for the channel"
    NO_CONSENT = "no_consent", "No consent for the channel"
    SUPPRESSED = "suppressed", "Suppressed"
    REGIONAL_RESTRICTION = "regional_restriction", "Regional restriction"
    FREQUENCY_CAP = "frequency_cap", "Over the frequency cap"
    WITHDRAWN_MID_SEND = "withdrawn_mid_send", "Consent withdrawn or suppressed while sending"
    CANCELLED = "cancelled", "Campaign cancelled"


class Send(models.Model):
    """One recipient of one campaign: queued → sending (claimed) → sent | failed, or
    skipped (with the reason) or deferred (the vendor was down)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sends")
    profile = models.ForeignKey("audiences.Profile", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=12, choices=SendState.choices, default=SendState.QUEUED)
    reason = models.CharField(max_length=40, blank=True)
    batch = models.PositiveIntegerField(null=True, blank=True)
    vendor_id = models.CharField(max_length=200, blank=True)
    idempotency_key = models.CharField(max_length=80)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "profile"], name="send_once_per_profile")]
        indexes = [
            models.Index(fields=["campaign", "state", "id"], name="send_campaign_state"),
            # Frequency caps count a profile's recent sends across campaigns.
            models.Index(fields=["profile", "sent_at"], name="send_profile_sent", condition=Q(state="sent")),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.profile_id} ({self.state})"


class ReviewState(models.TextChoices):
    OPEN = "open", "Waiting for review"
    RETRIED = "retried", "Retried"
    CANCELLED = "cancelled", "Cancelled"


class ReviewItem(models.Model):
    """A campaign's deferred sends after the retry budget: the manual review queue."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="review_items")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="review_items")
    destination = models.ForeignKey("integrations.Destination", on_delete=models.PROTECT, related_name="+")
    recipients = models.PositiveIntegerField()
    why = models.TextField()
    state = models.CharField(max_length=12, choices=ReviewState.choices, default=ReviewState.OPEN)
    since = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign"], condition=Q(state="open"), name="one_open_review_per_campaign")
        ]

    def __str__(self) -> str:
        return f"{self.campaign} — {self.recipients} waiting"
