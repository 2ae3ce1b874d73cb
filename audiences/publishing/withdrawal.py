"""Consent withdrawn after publish: take the people out of every live version of the
channel they withdrew, at once, and tell the destinations.

Called by the consent sync (audiences/profiles/services.py consent_sync) inside its
transaction, for the profiles whose consent for a channel it set to anything but
`granted`:

1. one DELETE … RETURNING removes their memberships of the environment's live versions of
   that channel (every channel of the sync in the same statement; on PostgreSQL the pairs
   are one `unnest` joined to the live versions, probing each by its primary key);
2. one UPDATE records the change on each version touched: `members` down, `withdrawn` up;
3. the removed people's external ids are queued for every active destination of the
   environment as a delivery job of its own (integrations/destinations/runner.py
   members_delivery_start), in the same transaction: the pushes commit with the consent
   change, run right after the commit, and the retry sweep (every 30 s) delivers what a
   destination deferred.

The consent sync's audit event carries the counts (versions and memberships removed, the
delivery job), so the change is audited with the sync that caused it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Case, F, Q, Value, When

from audiences.models import Audience, AudienceState, AudienceVersion, Membership, Profile
from governance.models import Environment


@dataclass
class Removal:
    """What a withdrawal took away: memberships per version id, and the delivery job."""

    by_version: dict[int, int] = field(default_factory=dict)
    profiles: int = 0
    delivery_job: int | None = None

    @property
    def memberships(self) -> int:
        return sum(self.by_version.values())

    def by_version_text(self) -> dict[str, int]:
        return {str(version_id): count for version_id, count in sorted(self.by_version.items())}

    def as_dict(self) -> dict[str, Any]:
        return {
            "versions": len(self.by_version),
            "memberships": self.memberships,
            "profiles": self.profiles,
            "delivery_job": self.delivery_job,
        }


_PG_DELETE = """\
DELETE FROM audiences_membership m
USING audiences_audience a, audiences_audienceversion v,
      unnest(%s::bigint[], %s::text[]) AS w(profile_id, channel)
WHERE a.environment_id = %s AND a.state = %s AND a.live_version_id = m.version_id
  AND v.id = m.version_id AND v.channel = w.channel AND m.profile_id = w.profile_id
RETURNING m.version_id, m.profile_id
"""


def _delete_memberships(environment: Environment, withdrawn: Mapping[str, Sequence[int]]) -> list[Any]:
    """PostgreSQL: the (profile, channel) pairs as one unnest joined to the live versions,
    so each version is probed by its primary key (version, profile) instead of scanned."""
    pairs = [(profile_id, channel) for channel, ids in withdrawn.items() for profile_id in ids]
    with connection.cursor() as cursor:
        cursor.execute(
            _PG_DELETE,
            [[p for p, _ in pairs], [c for _, c in pairs], environment.pk, AudienceState.PUBLISHED.value],
        )
        return list(cursor.fetchall())


def remove_withdrawn(
    *, environment: Environment, withdrawn: Mapping[str, Sequence[int]], requested_by: Any = None
) -> Removal:
    """Remove the profiles of `withdrawn` (channel → profile ids) from the live versions of
    that channel in `environment`; record it on the versions and queue the removal for the
    destinations. Run inside the caller's transaction."""
    removal = Removal()
    condition = Q()
    for channel, profile_ids in withdrawn.items():
        if profile_ids:
            condition |= Q(version__channel=channel, profile_id__in=list(profile_ids))
    if not condition:
        return removal
    rows = _delete_memberships(environment, withdrawn) if connection.vendor == "postgresql" else None
    if rows is None:
        live = Audience.objects.filter(
            environment=environment, state=AudienceState.PUBLISHED, live_version__isnull=False
        ).values("live_version_id")
        doomed = Membership.objects.filter(condition, version_id__in=live).values_list("version_id", "profile_id")
        select_sql, params = doomed.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {Membership._meta.db_table} WHERE (version_id, profile_id) IN ({select_sql}) "  # noqa: S608  # compiled by the ORM
                "RETURNING version_id, profile_id",
                params,
            )
            rows = cursor.fetchall()
    if not rows:
        return removal
    removed_profiles: set[int] = set()
    for version_id, profile_id in rows:
        removal.by_version[version_id] = removal.by_version.get(version_id, 0) + 1
        removed_profiles.add(profile_id)
    removal.profiles = len(removed_profiles)
    counts = removal.by_version
    AudienceVersion.objects.filter(pk__in=list(counts)).update(
        members=F("members") - Case(*(When(pk=pk, then=Value(n)) for pk, n in counts.items()), default=Value(0)),
        withdrawn=F("withdrawn") + Case(*(When(pk=pk, then=Value(n)) for pk, n in counts.items()), default=Value(0)),
    )
    external_ids = list(
        Profile.objects.filter(pk__in=list(removed_profiles)).order_by("pk").values_list("external_id", flat=True)
    )
    from integrations.destinations.runner import members_delivery_start
    from integrations.models import Destination

    if Destination.objects.filter(environment=environment, is_active=True).exists():
        job = members_delivery_start(
            environment=environment,
            added=[],
            removed=external_ids,
            requested_by=requested_by,
            target=("audiences.consent", "withdrawal"),
        )
        removal.delivery_job = job.pk
    return removal
