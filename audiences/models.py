"""The audiences app's tables, by topic (the code that writes each is named beside it):

- profiles: `Profile` (one customer in one environment, keyed by external_id), `Consent`
  (per channel, with `ConsentChange`, the ledger of every change) and `ProfileEvent`
  (behavioural events) — written by audiences/profiles/services.py (ingestion, consent sync);
- definitions: `Audience` (a named, owned definition: rules, channel, purpose, state) —
  audiences/definitions/services.py;
- publishing: `AudienceVersion` (an immutable published snapshot: rules, counts, diff) and
  `Membership` (who is in a version, composite key) — audiences/publishing/;
- suppressions and restrictions: `SuppressionList` and `SuppressionEntry` (people never to
  contact), `RegionalRestriction` (what a channel may not do in a region) —
  audiences/suppressions/services.py and the admin's regional_restriction_save;
- the catalogue: `CatalogueEntry` (each custom attribute key, profile event type and event
  property seen in an environment) — kept by ingestion through audiences/catalogue/services.py.

The choices (`Region`, `LifecycleStage`, `Channel`, `ConsentStatus`, the states and kinds)
are here too, and `IMPLIED_CONSENT_SOURCES`: consent that regional restrictions treat as
not explicit.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from audiences.dbfunctions import EmailHash
from governance.models import Environment


class Region(models.TextChoices):
    EU = "EU", "European Union"
    UK = "UK", "United Kingdom"
    NA = "NA", "North America"
    LATAM = "LATAM", "Latin America"
    APAC = "APAC", "Asia-Pacific"
    MEA = "MEA", "Middle East and Africa"


class LifecycleStage(models.TextChoices):
    LEAD = "lead", "Lead"
    PROSPECT = "prospect", "Prospect"
    CUSTOMER = "customer", "Customer"
    LOYAL = "loyal", "Loyal customer"
    LAPSED = "lapsed", "Lapsed"
    CHURNED = "churned", "Churned"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    ADS = "ads", "Ads"


class ConsentStatus(models.TextChoices):
    GRANTED = "granted", "Granted"
    DENIED = "denied", "Denied"
    UNKNOWN = "unknown", "Unknown"


class Profile(models.Model):
    """One customer record in one environment, keyed by `external_id`."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="profiles")
    external_id = models.CharField(max_length=255)
    email = models.CharField(max_length=254, null=True, blank=True)
    phone = models.CharField(max_length=32, null=True, blank=True)
    # The device token push notifications are sent to (APNs/FCM): the push channel's contact point.
    push_token = models.CharField(max_length=255, null=True, blank=True)
    first_name = models.CharField(max_length=100, null=True, blank=True)
    last_name = models.CharField(max_length=100, null=True, blank=True)
    locale = models.CharField(max_length=16, null=True, blank=True)
    country = models.CharField(max_length=2, null=True, blank=True)
    region = models.CharField(max_length=8, choices=Region.choices, null=True, blank=True)
    lifecycle_stage = models.CharField(max_length=16, choices=LifecycleStage.choices, null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    # Matches suppression entries kept by email hash; computed by the database.
    email_hash = models.GeneratedField(
        expression=EmailHash("email"), output_field=models.CharField(max_length=64), db_persist=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        permissions = [
            ("view_profile_pii", "Can see unmasked emails, phones and names"),
            ("ingest_profiles", "Can ingest profiles and profile events"),
            ("reset_sandbox", "Can rebuild a sandbox's synthetic data"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["environment", "external_id"], name="profile_external_id_per_env"),
        ]
        # Segment queries filter one environment by these columns; the leading
        # environment keeps each index usable for one tenant of many.
        indexes = [
            models.Index(fields=["environment", "region"], name="profile_env_region"),
            models.Index(fields=["environment", "lifecycle_stage"], name="profile_env_stage"),
            models.Index(fields=["environment", "country"], name="profile_env_country"),
            models.Index(fields=["environment", "locale"], name="profile_env_locale"),
            models.Index(fields=["environment", "updated_at"], name="profile_env_updated"),
            models.Index(fields=["environment", "email"], name="profile_env_email"),
            models.Index(fields=["email_hash"], name="profile_email_hash"),
        ]

    def __str__(self) -> str:
        return self.external_id


class Consent(models.Model):
    """A profile's current permission on one channel; every change also lands in ConsentChange."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(max_length=8, choices=ConsentStatus.choices)
    source = models.CharField(max_length=64, blank=True)
    captured_at = models.DateTimeField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        permissions = [("sync_consent", "Can apply consent updates")]
        constraints = [
            models.UniqueConstraint(fields=["profile", "channel"], name="consent_one_per_channel"),
        ]
        # Rules ask "does profile p have granted consent on channel c": the unique
        # (profile, channel) index answers that; this one serves counts per channel.
        indexes = [models.Index(fields=["channel", "status"], name="consent_channel_status")]

    def __str__(self) -> str:
        return f"{self.profile_id}/{self.channel}={self.status}"


class ConsentChange(models.Model):
    """The consent ledger: one append-only row for every change of a profile's consent."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="consent_changes")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    previous_status = models.CharField(max_length=8, choices=ConsentStatus.choices, null=True, blank=True)
    status = models.CharField(max_length=8, choices=ConsentStatus.choices)
    source = models.CharField(max_length=64, blank=True)
    captured_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["profile", "-id"], name="consentchange_profile")]

    def __str__(self) -> str:
        return f"{self.profile_id}/{self.channel}: {self.previous_status} → {self.status}"


class ProfileEvent(models.Model):
    """Something a customer did (`cart_abandoned`, `purchase`), used by audience rules."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    # Optional id from the sender: the same event sent twice is stored once.
    event_id = models.CharField(max_length=128, null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "event_id"], condition=Q(event_id__isnull=False), name="profileevent_dedupe"
            ),
        ]
        # Rules compile event conditions to a correlated EXISTS on (profile, type, time).
        indexes = [models.Index(fields=["profile", "type", "occurred_at"], name="profileevent_lookup")]

    def __str__(self) -> str:
        return f"{self.type}@{self.occurred_at:%Y-%m-%d}"


class AudienceState(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


class Audience(models.Model):
    """A named, owned definition of who to reach: rules + channel + purpose.

    Owned by a team (a Django group); everyone in the environment may view it, changing it
    needs the team, a share of `change` (django-guardian) or the admin role.
    """

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="audiences")
    name = models.CharField(max_length=120)
    owner_team = models.ForeignKey("auth.Group", on_delete=models.PROTECT, related_name="owned_audiences")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    purpose = models.CharField(max_length=200)
    description = models.TextField()
    rules = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=AudienceState.choices, default=AudienceState.DRAFT)
    live_version = models.ForeignKey(
        "audiences.AudienceVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="created_audiences"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("publish_audience", "Can publish audiences"),
            ("share_audience", "Can share audiences with users and teams"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["environment", "name"], name="audience_name_per_env"),
        ]
        indexes = [models.Index(fields=["environment", "state"], name="audience_env_state")]

    def __str__(self) -> str:
        return self.name


class VersionState(models.TextChoices):
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class AudienceVersion(models.Model):
    """An immutable published snapshot of an audience: rules, members, counts.

    Member rows are kept for the most recent versions only (AUDIENCE_VERSIONS_WITH_MEMBERS);
    rules, counts and diff sizes are kept for all, so an older version can be rebuilt.
    """

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    rules = models.JSONField()
    channel = models.CharField(max_length=8, choices=Channel.choices)
    state = models.CharField(max_length=12, choices=VersionState.choices, default=VersionState.BUILDING)
    matching = models.PositiveIntegerField(null=True, blank=True, help_text="Profiles matching the rules.")
    members = models.PositiveIntegerField(null=True, blank=True, help_text="Reach: members after the waterfall.")
    added = models.PositiveIntegerField(null=True, blank=True)
    removed = models.PositiveIntegerField(null=True, blank=True)
    waterfall = models.JSONField(default=list, blank=True)
    members_retained = models.BooleanField(default=True)
    withdrawn = models.PositiveIntegerField(
        default=0,
        help_text="Members removed while it was live because they withdrew consent for its channel "
        "(audiences/publishing/withdrawal.py); `members` counts those who remain.",
    )
    rebuilt_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    job = models.ForeignKey("integrations.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    built_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["audience", "number"], name="version_number_per_audience")]

    def __str__(self) -> str:
        return f"{self.audience} v{self.number}"


class Membership(models.Model):
    """A profile in a version. Composite key: no id column, one index serves both
    membership lookups and stable cursor pages in profile order."""

    pk = models.CompositePrimaryKey("version_id", "profile_id")
    # The primary key's prefix serves lookups by version, and `membership_profile` those by
    # profile (deleting one): no further index, as every published member maintains each.
    version = models.ForeignKey(AudienceVersion, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+", db_index=False)

    class Meta:
        indexes = [models.Index(fields=["profile"], name="membership_profile")]

    def __str__(self) -> str:
        return f"{self.version_id}:{self.profile_id}"


class SuppressionList(models.Model):
    """People never to contact, applied everywhere: in preview, publish and at send time.

    Each environment has one global list (changing it in pilot or production needs two
    approvals) and any number of named lists.
    """

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="suppression_lists")
    name = models.CharField(max_length=100)
    is_global = models.BooleanField(default=False)
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-is_global", "name"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "name"], name="suppression_name_per_env"),
            models.UniqueConstraint(
                fields=["environment"], condition=Q(is_global=True), name="one_global_suppression_list"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({'global' if self.is_global else 'named'})"


class SuppressionEntry(models.Model):
    """One person on a list, by external_id or by the SHA-256 of their lower-cased email."""

    suppression_list = models.ForeignKey(SuppressionList, on_delete=models.CASCADE, related_name="entries")
    external_id = models.CharField(max_length=255, null=True, blank=True)
    email_hash = models.CharField(max_length=64, null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "suppression entries"
        constraints = [
            models.CheckConstraint(
                condition=Q(external_id__isnull=False) | Q(email_hash__isnull=False), name="suppression_has_key"
            ),
        ]
        indexes = [
            models.Index(fields=["external_id", "suppression_list"], name="suppression_external_id"),
            models.Index(fields=["email_hash", "suppression_list"], name="suppression_email_hash"),
        ]

    def __str__(self) -> str:
        return self.external_id or f"email:{(self.email_hash or '')[:12]}…"


class RestrictionKind(models.TextChoices):
    BLOCKED = "blocked", "Channel may not target the region"
    EXPLICIT_CONSENT = "explicit_consent", "Profiles in the region need explicit consent"


class RegionalRestriction(models.Model):
    """A per-environment rule such as "SMS may not target region X" or "EU profiles need
    explicit consent" (granted consent whose source is not an implied one)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="regional_restrictions")
    region = models.CharField(max_length=8, choices=Region.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices, blank=True, help_text="Empty: every channel.")
    kind = models.CharField(max_length=20, choices=RestrictionKind.choices)
    description = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["region", "channel"]

    def __str__(self) -> str:
        return self.description


# Consent sources that do not count as explicit consent where a region demands it.
IMPLIED_CONSENT_SOURCES = ("implied", "legitimate_interest", "soft_opt_in")


class CatalogueKind(models.TextChoices):
    ATTRIBUTE = "attribute", "Custom attribute"
    EVENT = "event", "Event type"
    EVENT_PROPERTY = "event_property", "Event property"


# The JSON types a catalogue entry's values were seen with, as bits of `value_types`: a
# batch's types are OR-ed into what is stored, in SQL (audiences/catalogue/sql.py).
VALUE_TYPE_BITS: dict[str, int] = {"text": 1, "number": 2, "true/false": 4, "list": 8, "object": 16, "null": 32}


class CatalogueEntry(models.Model):
    """A custom attribute key, a profile event type or an event's property, as seen in one
    environment's data: what the builder offers and what did-you-mean hints compare with.

    Written set-based by ingestion (profiles, profile events, sandbox resets), one
    statement per batch; `pii` is set by admins (audiences/catalogue/services.py), audited.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="catalogue_entries")
    kind = models.CharField(max_length=16, choices=CatalogueKind.choices)
    event_type = models.CharField(
        max_length=64, blank=True, default="", help_text="For an event property: the type of the events that carry it."
    )
    key = models.CharField(max_length=255, help_text="The attribute key, event type or property name.")
    value_types = models.PositiveSmallIntegerField(
        default=0, help_text="The JSON types seen (bits of VALUE_TYPE_BITS)."
    )
    seen_count = models.PositiveBigIntegerField(
        default=0, help_text="How many ingested rows (profiles or events) carried it, over all ingestions."
    )
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    pii = models.BooleanField(
        default=False,
        verbose_name="personal data",
        help_text="The key holds personal data (a home address, a birth date…). Set by admins.",
    )

    class Meta:
        verbose_name_plural = "catalogue entries"
        ordering = ["kind", "event_type", "key"]
        constraints = [
            # The conflict target of the set-based upserts; also serves lookups by environment.
            models.UniqueConstraint(fields=["environment", "kind", "event_type", "key"], name="catalogue_entry_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type}.{self.key}" if self.event_type else self.key

    @property
    def types(self) -> list[str]:
        """The JSON types seen, by name ("text", "number", …)."""
        return [name for name, bit in VALUE_TYPE_BITS.items() if self.value_types & bit]


# --- exports ---------------------------------------------------------------------


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON lines"


class ExportState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    READY = "ready", "Ready to download"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired (file deleted)"


class Export(models.Model):
    """The members of an audience's live version written to a file (CSV or JSON lines) for
    download: PII masked unless it is a PII export (a compliance reviewer's, approved where
    the policy asks). Written by audiences/exports/services.py (request, download, expiry)
    and its worker side (audiences/exports/runner.py)."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="exports")
    audience = models.ForeignKey(Audience, on_delete=models.SET_NULL, null=True, related_name="exports")
    version = models.ForeignKey(
        AudienceVersion,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The live version whose members were written (set when the export runs).",
    )
    format = models.CharField(max_length=8, choices=ExportFormat.choices)
    fields = models.JSONField(help_text='The columns, in order, e.g. ["external_id", "email", "attributes.tier"].')
    pii = models.BooleanField(default=False, help_text="PII unmasked (a PII export) or masked.")
    state = models.CharField(max_length=12, choices=ExportState.choices, default=ExportState.QUEUED)
    job = models.ForeignKey("integrations.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    rows = models.PositiveBigIntegerField(null=True, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True, help_text="Bytes.")
    file_name = models.CharField(max_length=300, blank=True, help_text="The file in the exports storage when ready.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("export_pii", "Can export audience members with PII unmasked")]
        indexes = [
            models.Index(fields=["environment", "-id"], name="export_env_id"),
            models.Index(fields=["state", "expires_at"], name="export_state_expiry"),
        ]

    def __str__(self) -> str:
        return f"export #{self.pk} ({self.format}, {self.state})"
