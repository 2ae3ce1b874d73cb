"""Preview: how many profiles match, how many the channel can reach, and why the rest drop.

The reach waterfall goes matching → without consent for the channel → suppressed →
regional restriction → reachable. It is computed in one aggregate query over the
compiled rules (conditional counts over correlated EXISTS flags); breakdowns and the
sample are one query each. The same reachability expression materializes members when
an audience is published, so preview and publish agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audiences.models import (
    IMPLIED_CONSENT_SOURCES,
    Consent,
    ConsentStatus,
    Profile,
    RegionalRestriction,
    RestrictionKind,
    SuppressionEntry,
)
from audiences.rules import compile_rules
from governance.models import Environment

SAMPLE_SIZE = 10
STEPS = ("matching", "without consent", "suppressed", "regional restriction")


@dataclass(frozen=True)
class Reachability:
    """The waterfall's three filters for one channel, as Q objects over Profile."""

    consent: Q
    not_suppressed: Q
    not_restricted: Q
    restrictions: list[str]

    @property
    def reachable(self) -> Q:
        return self.consent & self.not_suppressed & self.not_restricted


def _granted(channel: str, *, explicit: bool = False) -> Exists:
    consents = Consent.objects.filter(profile=OuterRef("pk"), channel=channel, status=ConsentStatus.GRANTED)
    if explicit:
        consents = consents.exclude(source__in=IMPLIED_CONSENT_SOURCES)
    return Exists(consents)


def reachability(environment: Environment, channel: str) -> Reachability:
    entries = SuppressionEntry.objects.filter(suppression_list__environment=environment)
    # Two EXISTS rather than one with an OR: each is an index probe on its own column.
    suppressed = Q(Exists(entries.filter(external_id=OuterRef("external_id")))) | Q(
        Exists(entries.filter(email_hash=OuterRef("email_hash")))
    )
    restricted = Q(pk__in=[])
    described: list[str] = []
    for rule in RegionalRestriction.objects.filter(environment=environment, is_active=True).filter(
        Q(channel="") | Q(channel=channel)
    ):
        if rule.kind == RestrictionKind.BLOCKED:
            restricted |= Q(region=rule.region)
        else:
            restricted |= Q(region=rule.region) & ~Q(_granted(channel, explicit=True))
        described.append(rule.description)
    return Reachability(
        consent=Q(_granted(channel)),
        not_suppressed=~suppressed,
        not_restricted=~restricted,
        restrictions=described,
    )


def matching_queryset(
    environment: Environment, rules: dict[str, Any], *, now: datetime, live_versions: dict[int, int | None]
) -> QuerySet[Profile]:
    return Profile.objects.filter(environment=environment).filter(
        compile_rules(rules, now=now, live_versions=live_versions)
    )


def reachable_queryset(
    environment: Environment,
    rules: dict[str, Any],
    channel: str,
    *,
    now: datetime | None = None,
    live_versions: dict[int, int | None] | None = None,
) -> QuerySet[Profile]:
    """The members an audience would have now: what publish materializes."""
    gate = reachability(environment, channel)
    return matching_queryset(environment, rules, now=now or timezone.now(), live_versions=live_versions or {}).filter(
        gate.reachable
    )


def compute_preview(
    *,
    environment: Environment,
    rules: dict[str, Any],
    channel: str,
    live_versions: dict[int, int | None] | None = None,
    now: datetime | None = None,
    sample_size: int = SAMPLE_SIZE,
) -> dict[str, Any]:
    """Count, waterfall, breakdowns and a sample (unmasked; the caller masks it)."""
    now = now or timezone.now()
    matching = matching_queryset(environment, rules, now=now, live_versions=live_versions or {})
    gate = reachability(environment, channel)

    counts = matching.aggregate(
        matching=Count("pk"),
        consented=Count("pk", filter=gate.consent),
        unsuppressed=Count("pk", filter=gate.consent & gate.not_suppressed),
        reachable=Count("pk", filter=gate.reachable),
    )
    remaining = [counts["matching"], counts["consented"], counts["unsuppressed"], counts["reachable"]]
    waterfall = [{"step": "matching", "remaining": remaining[0], "removed": 0}]
    for step, before, after in zip(STEPS[1:], remaining[:-1], remaining[1:], strict=True):
        waterfall.append({"step": step, "remaining": after, "removed": before - after})
    waterfall.append({"step": "reachable", "remaining": remaining[-1], "removed": 0})

    status = Coalesce(
        Subquery(Consent.objects.filter(profile=OuterRef("pk"), channel=channel).values("status")[:1]),
        Value(ConsentStatus.UNKNOWN),
    )
    breakdowns = {
        "region": _breakdown(matching.values("region"), "region"),
        "lifecycle_stage": _breakdown(matching.values("lifecycle_stage"), "lifecycle_stage"),
        "consent": _breakdown(matching.annotate(consent=status).values("consent"), "consent"),
    }
    sample = list(matching.filter(gate.reachable).order_by("pk")[:sample_size])

    warnings = []
    if counts["matching"] == 0:
        warnings.append(
            {"code": "no_match", "message": "No profile matches these rules.", "hint": "Loosen a condition."}
        )
    elif counts["reachable"] == 0:
        warnings.append(
            {
                "code": "no_reach",
                "message": f"Profiles match, but none can be reached by {channel}.",
                "hint": "Check the waterfall: add a consent condition or choose a channel they consented to.",
            }
        )
    if counts["matching"] and counts["consented"] < counts["matching"]:
        missing = counts["matching"] - counts["consented"]
        warnings.append(
            {
                "code": "consent_missing",
                "message": f"{missing:,} of {counts['matching']:,} profiles lack {channel} consent; "
                "they will not be members.",
                "hint": f'Add the rule {{"consent": "{channel}", "is": true}} to see exactly who you reach.',
            }
        )
    for description in gate.restrictions:
        warnings.append({"code": "regional_restriction", "message": description, "hint": "Applied automatically."})

    return {
        "count": counts["matching"],
        "reachable": counts["reachable"],
        "waterfall": waterfall,
        "breakdowns": breakdowns,
        "sample": sample,
        "warnings": warnings,
    }


def _breakdown(grouped: QuerySet[Any], key: str) -> dict[str, int]:
    rows = grouped.annotate(n=Count("pk")).order_by()
    return {str(row[key]) if row[key] is not None else "unknown": row["n"] for row in rows}
