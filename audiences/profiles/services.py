"""Writes of profiles, profile events and consent: the bulk ingestion paths.

Every service asks the policy engine before its transaction, then, inside one
transaction, applies the change set-based (one read of what exists, bulk writes in
batches, never a query per row), records the attribute keys and event types it saw in the
environment's catalogue (one statement, audiences/catalogue/), writes exactly one audit
event with a summary, and emits its domain events to the outbox.

A batch is all-or-nothing: rows are validated (by the API's serializers for field
values; here for what needs the database, such as unknown profiles) before anything
is written, and one bad row refuses the whole batch with every bad row listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from audiences.catalogue import services as catalogue
from audiences.models import Consent, ConsentChange, ConsentStatus, Profile, ProfileEvent
from audiences.profiles.errors import check_batch_size, duplicate_row_errors, raise_row_errors, row_error
from audiences.profiles.pii import PII_FIELDS
from audiences.publishing.withdrawal import remove_withdrawn
from governance import outbox, policy
from governance.actors import Actor
from governance.audit import trail as audit

# The profile columns an upsert may set; `external_id` is the key, never updated.
PROFILE_FIELDS: tuple[str, ...] = (
    "email",
    "phone",
    "push_token",
    "first_name",
    "last_name",
    "locale",
    "country",
    "region",
    "lifecycle_stage",
    "attributes",
)
# Rows per INSERT. PostgreSQL takes 1,000 rows of ~15 columns easily; Django lowers it
# further on SQLite, whose statements hold at most 999 parameters.
WRITE_BATCH = 1000


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


# --- profiles -------------------------------------------------------------------


@dataclass(frozen=True)
class UpsertOutcome:
    created: int
    updated: int
    unchanged: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def profiles_bulk_upsert(*, actor: Actor, rows: Sequence[Mapping[str, Any]]) -> UpsertOutcome:
    """Create or update profiles by `external_id` in the actor's environment.

    A field a row leaves out keeps its stored value; `null` clears it. `attributes`,
    when sent, replaces the stored object as a whole (no deep merge), so sending the
    same row twice always gives the same profile. `updated_at` moves only for profiles
    that actually changed; unchanged rows are not written at all.
    """
    decision = policy.require(actor, "profile.ingest")
    check_batch_size(rows, "profiles")
    raise_row_errors(
        duplicate_row_errors(
            rows, key="profiles", field="external_id", identity=lambda r: r["external_id"], what="external_id"
        )
    )
    environment = actor.environment
    now = timezone.now()
    created = updated = unchanged = 0
    to_write: list[Profile] = []
    with transaction.atomic():
        # Locking what exists (in id order, so two batches never deadlock) keeps a
        # concurrent partial update of the same profile from being overwritten with
        # the values read here.
        existing = {
            profile.external_id: profile
            for profile in Profile.objects.select_for_update()
            .filter(environment=environment, external_id__in=[row["external_id"] for row in rows])
            .order_by("pk")
        }
        for row in rows:
            current = existing.get(row["external_id"])
            if current is None:
                values = {field: row.get(field) for field in PROFILE_FIELDS}
                values["attributes"] = values["attributes"] or {}
                to_write.append(
                    Profile(
                        environment=environment,
                        external_id=row["external_id"],
                        created_at=now,
                        updated_at=now,
                        **values,
                    )
                )
                created += 1
                continue
            if all(getattr(current, field) == row[field] for field in PROFILE_FIELDS if field in row):
                unchanged += 1
                continue
            values = {field: row.get(field, getattr(current, field)) for field in PROFILE_FIELDS}
            to_write.append(
                Profile(
                    environment=environment,
                    external_id=current.external_id,
                    created_at=current.created_at,
                    updated_at=now,
                    **values,
                )
            )
            updated += 1
        # INSERT … ON CONFLICT DO UPDATE: a profile created by a concurrent request
        # after the read above is updated instead of failing the batch.
        to_write.sort(key=lambda p: p.external_id)
        Profile.objects.bulk_create(
            to_write,
            batch_size=WRITE_BATCH,
            update_conflicts=True,
            unique_fields=["environment", "external_id"],
            update_fields=[*PROFILE_FIELDS, "updated_at"],
        )
        # The attribute keys the batch carries, into the environment's catalogue: one statement.
        catalogue.record_profile_attributes(environment=environment, rows=rows, seen_at=now)
        outcome = UpsertOutcome(created=created, updated=updated, unchanged=unchanged)
        if created or updated:
            outbox.emit(
                "profiles.ingested",
                ("governance.environment", environment.pk),
                {**outcome.as_dict(), "request_id": actor.request_id},
                environment=environment,
            )
        # The audit event is the last write: it holds the environment's audit-chain lock until commit.
        audit.record(
            actor,
            "profile.ingest",
            (Profile._meta.label_lower, "", f"batch of {len(rows):,} profiles"),
            decision=decision,
            changes={"rows": len(rows), **outcome.as_dict()},
        )
    return outcome


def profile_pii_read_record(
    *, actor: Actor, profiles: Sequence[Profile], decision: policy.Decision | None = None
) -> None:
    """Audit one unmasked read of profiles' PII: one event per read, listing the ids read."""
    if not profiles:
        return
    ids = [profile.pk for profile in profiles]
    if len(profiles) == 1:
        target: tuple[str, Any, str] = (Profile._meta.label_lower, ids[0], str(profiles[0]))
    else:
        target = (Profile._meta.label_lower, "", f"{len(ids):,} profiles")
    with transaction.atomic():
        audit.record(
            actor,
            "profile.pii_read",
            target,
            decision=decision,
            changes={"profile_ids": ids, "fields": list(PII_FIELDS)},
        )


def _profile_ids_or_errors(
    *, actor: Actor, rows: Sequence[Mapping[str, Any]], key: str, lock: bool = False
) -> dict[str, int]:
    """Map each row's external_id to a profile id; refuse the batch if any is unknown."""
    # Served by the unique (environment, external_id) index; no ORDER BY unless locking.
    queryset = Profile.objects.filter(
        environment=actor.environment, external_id__in={row["external_id"] for row in rows}
    ).order_by()
    if lock:
        queryset = queryset.select_for_update().order_by("pk")
    known = dict(queryset.values_list("external_id", "pk"))
    raise_row_errors(
        [
            row_error(
                index,
                key,
                "external_id",
                "profile_not_found",
                f"There is no profile with external_id {row['external_id']!r} in {actor.environment.slug}.",
                "Upsert the profile first with POST /api/v1/profiles/bulk, then send this row again.",
            )
            for index, row in enumerate(rows)
            if row["external_id"] not in known
        ]
    )
    return known


# --- profile events -------------------------------------------------------------


@dataclass(frozen=True)
class EventIngestOutcome:
    created: int
    duplicate: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def profile_events_ingest(*, actor: Actor, events: Sequence[Mapping[str, Any]]) -> EventIngestOutcome:
    """Store behavioural events of known profiles.

    An event with an `event_id` is stored once per profile: a resend (in this batch or
    an earlier one) counts as `duplicate`, not as an error. An unknown `external_id`
    refuses the batch (code `profile_not_found`).
    """
    decision = policy.require(actor, "profile_event.ingest")
    check_batch_size(events, "events")
    now = timezone.now()
    with transaction.atomic():
        profile_ids = _profile_ids_or_errors(actor=actor, rows=events, key="events")
        keyed = {(profile_ids[e["external_id"]], e["event_id"]) for e in events if e.get("event_id") is not None}
        seen: set[tuple[int, str | None]] = set()
        if keyed:
            # An index scan on profile_id (EXPLAIN on PostgreSQL); the ORDER BY of
            # ProfileEvent's Meta is dropped, nothing here needs it.
            seen = set(
                ProfileEvent.objects.filter(
                    profile_id__in={pid for pid, _ in keyed},
                    event_id__in={eid for _, eid in keyed},
                    event_id__isnull=False,
                )
                .order_by()
                .values_list("profile_id", "event_id")
            )
        to_create: list[ProfileEvent] = []
        duplicate = 0
        for event in events:
            profile_id = profile_ids[event["external_id"]]
            event_id = event.get("event_id")
            if event_id is not None:
                if (profile_id, event_id) in seen:
                    duplicate += 1
                    continue
                seen.add((profile_id, event_id))
            to_create.append(
                ProfileEvent(
                    profile_id=profile_id,
                    type=event["type"],
                    occurred_at=event["occurred_at"],
                    properties=event.get("properties") or {},
                    event_id=event_id,
                    received_at=now,
                )
            )
        # A concurrent resend of the same event_id is skipped by the unique index
        # instead of failing the batch.
        ProfileEvent.objects.bulk_create(to_create, batch_size=WRITE_BATCH, ignore_conflicts=True)
        # The event types and properties the batch carries, into the catalogue: one statement.
        catalogue.record_events(environment=actor.environment, events=events, seen_at=now)
        outcome = EventIngestOutcome(created=len(to_create), duplicate=duplicate)
        audit.record(
            actor,
            "profile_event.ingest",
            (ProfileEvent._meta.label_lower, "", f"batch of {len(events):,} profile events"),
            decision=decision,
            changes={"rows": len(events), **outcome.as_dict()},
        )
    return outcome


# --- consent --------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentSyncOutcome:
    updated: int
    unchanged: int
    stale: int
    # Memberships of live versions removed because consent was withdrawn (withdrawal.py).
    removed_from_audiences: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def consent_sync(*, actor: Actor, updates: Sequence[Mapping[str, Any]]) -> ConsentSyncOutcome:
    """Apply consent updates; the newest `captured_at` per profile and channel wins.

    - An update older than the stored `captured_at` is ignored and counted `stale`; so
      are the older of several updates for one profile and channel in the same batch
      (on equal `captured_at`, the later row in the batch wins).
    - The same `captured_at` and status as stored counts `unchanged`: sending a batch
      twice changes nothing the second time.
    - Everything else is applied: the stored consent changes, the ledger gets a row
      (with the request id), and the profile gets one `consent.updated` domain event
      listing its changes. A newer `captured_at` with the same status is applied too:
      it renews the proof of consent, and later updates are judged stale against it.
    - A channel's consent set to anything but granted takes the person out of every live
      version of that channel in the environment at once (one statement), recorded on
      each version and queued for the connected destinations (`removed_from_audiences`
      counts the memberships; audiences/publishing/withdrawal.py).
    """
    decision = policy.require(actor, "consent.sync")
    check_batch_size(updates, "updates")
    environment = actor.environment
    now = timezone.now()
    with transaction.atomic():
        # Locking the profiles serializes two syncs of the same profile, so the stale
        # check below always compares against what the other one committed.
        profile_ids = _profile_ids_or_errors(actor=actor, rows=updates, key="updates", lock=True)
        stored = {
            (consent.profile_id, consent.channel): consent
            for consent in Consent.objects.filter(profile_id__in=profile_ids.values())
        }

        stale = unchanged = 0
        newest: dict[tuple[int, str], Mapping[str, Any]] = {}
        for update in updates:
            key = (profile_ids[update["external_id"]], update["channel"])
            best = newest.get(key)
            if best is not None:
                stale += 1
                if update["captured_at"] < best["captured_at"]:
                    continue
            newest[key] = update

        consents: list[Consent] = []
        ledger: list[ConsentChange] = []
        changes_by_profile: dict[int, list[dict[str, Any]]] = {}
        for key, update in sorted(newest.items(), key=lambda item: item[0]):
            current = stored.get(key)
            if current is not None:
                if update["captured_at"] < current.captured_at:
                    stale += 1
                    continue
                if update["captured_at"] == current.captured_at and update["status"] == current.status:
                    unchanged += 1
                    continue
            profile_id, channel = key
            previous_status = current.status if current is not None else None
            consents.append(
                Consent(
                    profile_id=profile_id,
                    channel=channel,
                    status=update["status"],
                    source=update["source"],
                    captured_at=update["captured_at"],
                    updated_at=now,
                )
            )
            ledger.append(
                ConsentChange(
                    profile_id=profile_id,
                    channel=channel,
                    previous_status=previous_status,
                    status=update["status"],
                    source=update["source"],
                    captured_at=update["captured_at"],
                    recorded_at=now,
                    request_id=actor.request_id,
                )
            )
            changes_by_profile.setdefault(profile_id, []).append(
                {
                    "channel": channel,
                    "status": update["status"],
                    "previous_status": previous_status,
                    "captured_at": _iso(update["captured_at"]),
                    "source": update["source"],
                }
            )

        Consent.objects.bulk_create(
            consents,
            batch_size=WRITE_BATCH,
            update_conflicts=True,
            unique_fields=["profile", "channel"],
            update_fields=["status", "source", "captured_at", "updated_at"],
        )
        ConsentChange.objects.bulk_create(ledger, batch_size=WRITE_BATCH)
        external_ids = {pk: external_id for external_id, pk in profile_ids.items()}
        outbox.emit_many(
            "consent.updated",
            environment,
            (
                (Profile._meta.label_lower, profile_id, {"external_id": external_ids[profile_id], "changes": changes})
                for profile_id, changes in changes_by_profile.items()
            ),
        )
        # Consent withdrawn after publish: out of every live version of the channel now, and
        # the removal queued for the destinations (audiences/publishing/withdrawal.py).
        withdrawn: dict[str, list[int]] = {}
        for consent in consents:
            if consent.status != ConsentStatus.GRANTED:
                withdrawn.setdefault(consent.channel, []).append(consent.profile_id)
        removal = remove_withdrawn(
            environment=environment,
            withdrawn=withdrawn,
            requested_by=actor.user if getattr(actor.user, "pk", None) else None,
        )
        outcome = ConsentSyncOutcome(
            updated=len(consents), unchanged=unchanged, stale=stale, removed_from_audiences=removal.memberships
        )
        audit.record(
            actor,
            "consent.sync",
            (Consent._meta.label_lower, "", f"batch of {len(updates):,} consent updates"),
            decision=decision,
            changes={
                "rows": len(updates),
                **outcome.as_dict(),
                "profiles_changed": len(changes_by_profile),
                # The membership change on each live version, with the sync that caused it.
                **(
                    {"live_versions": {**removal.as_dict(), "removed_by_version": removal.by_version_text()}}
                    if removal.memberships
                    else {}
                ),
            },
        )
    return outcome
