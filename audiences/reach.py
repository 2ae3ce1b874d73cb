"""Who an audience reaches: the one definition of matching and reachable, and the counts
that preview and validate report.

    matching    the environment's profiles the rules select (audiences/rules.py compiles them)
    reachable   those the channel may contact now: with an address for the channel (its
                contact point, CONTACT_POINTS), consent granted for the channel, on no
                suppression list of the environment, under no regional restriction

`reachability()` is the four filters as Q objects; `reachable_queryset()` the reachable
set as one query. Preview's sample, the reach an approval request states, publish's
members (materialized set-based by audiences/publishing/build.py, which counts its
waterfall with the same filters) and a rollback rebuilt from rules all read that one
definition; a rollback that copies an earlier version's members narrows them with
`still_reachable()`. The differential tests check rules against a reference evaluator,
and preview against publish.

Preview (`compute_preview`): the reach waterfall goes matching → no address for the channel
→ without consent for the channel → suppressed → regional restriction → reachable. Everything but the sample comes
from one pass over the matching profiles: they are joined to their consent row for the
channel (one per profile and channel) and grouped by region, lifecycle stage and consent
status, with a conditional count per waterfall step (`count(*) FILTER (WHERE …)`). The
totals and the three breakdowns are sums over those few groups. The sample is one more
small query. Validate (`reach_stats`) counts the same steps and each restriction in one
aggregate.
"""

from __future__ import annotations

import json
import operator
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Exists, F, FilteredRelation, OuterRef, Q, QuerySet
from django.utils import timezone

from audiences.models import (
    IMPLIED_CONSENT_SOURCES,
    Consent,
    ConsentStatus,
    LifecycleStage,
    Profile,
    Region,
    RegionalRestriction,
    RestrictionKind,
    SuppressionEntry,
)
from audiences.rules import compile_rules
from governance.models import Environment

SAMPLE_SIZE = 10
STEPS = ("matching", "no address", "without consent", "suppressed", "regional restriction")
UNKNOWN = "unknown"

# The contact point each channel needs (PRODUCT.md §6): the profile columns of which one
# must hold a value. Ad platforms match people on their email address or phone number.
CONTACT_POINTS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "sms": ("phone",),
    "push": ("push_token",),
    "ads": ("email", "phone"),
}
# The same in words, for messages and hints: "…have no email address", "send their phone numbers".
ADDRESS_WORDS: dict[str, tuple[str, str]] = {
    "email": ("email address", "email addresses"),
    "sms": ("phone number", "phone numbers"),
    "push": ("push token", "push tokens"),
    "ads": ("email address or phone number", "email addresses or phone numbers"),
}


def has_address(channel: str) -> Q:
    """Profiles with a contact point for `channel`. `column > ''` is false for NULL and for
    the empty string alike, in one comparison on the row."""
    return reduce(operator.or_, (Q(**{f"{column}__gt": ""}) for column in CONTACT_POINTS[channel]))


def address_rule(channel: str) -> dict[str, Any]:
    """A rule that says "has an address for `channel`", for hints."""
    present = [{"attr": column, "op": "is_null", "value": False} for column in CONTACT_POINTS[channel]]
    return present[0] if len(present) == 1 else {"any": present}


# The matching profiles' consent row for the preview's channel (LEFT JOIN: none is "unknown").
CHANNEL_CONSENT = "channel_consent"


@dataclass(frozen=True)
class Reachability:
    """The waterfall's four filters for one channel, as Q objects over Profile."""

    addressed: Q
    consent: Q
    not_suppressed: Q
    not_restricted: Q
    restrictions: list[str]

    @property
    def reachable(self) -> Q:
        return self.addressed & self.consent & self.not_suppressed & self.not_restricted


def _granted(channel: str, *, explicit: bool = False) -> Exists:
    consents = Consent.objects.filter(profile=OuterRef("pk"), channel=channel, status=ConsentStatus.GRANTED)
    if explicit:
        consents = consents.exclude(source__in=IMPLIED_CONSENT_SOURCES)
    return Exists(consents)


def active_restrictions(environment: Environment, channel: str) -> list[RegionalRestriction]:
    """The environment's regional restrictions that apply to `channel` (one query)."""
    return list(
        RegionalRestriction.objects.filter(environment=environment, is_active=True).filter(
            Q(channel="") | Q(channel=channel)
        )
    )


def _suppressed(environment: Environment) -> Q:
    entries = SuppressionEntry.objects.filter(suppression_list__environment=environment)
    # Two EXISTS rather than one with an OR: each is an index probe on its own column.
    return Q(Exists(entries.filter(external_id=OuterRef("external_id")))) | Q(
        Exists(entries.filter(email_hash=OuterRef("email_hash")))
    )


def restriction_removes(restriction: RegionalRestriction, channel: str) -> Q:
    """The profiles one regional restriction keeps from `channel`: everyone in a blocked
    region; in a region that needs explicit consent, whoever's consent is only implied."""
    if restriction.kind == RestrictionKind.BLOCKED:
        return Q(region=restriction.region)
    return Q(region=restriction.region) & ~Q(_granted(channel, explicit=True))


def reachability(
    environment: Environment, channel: str, *, restrictions: list[RegionalRestriction] | None = None
) -> Reachability:
    """The four filters of `channel` in `environment` (one query for its restrictions, unless given)."""
    if restrictions is None:
        restrictions = active_restrictions(environment, channel)
    restricted = Q(pk__in=[])
    for rule in restrictions:
        restricted |= restriction_removes(rule, channel)
    return Reachability(
        addressed=has_address(channel),
        consent=Q(_granted(channel)),
        not_suppressed=~_suppressed(environment),
        not_restricted=~restricted,
        restrictions=[rule.description for rule in restrictions],
    )


def matching_queryset(
    environment: Environment, rules: dict[str, Any], *, now: datetime, live_versions: dict[int, int | None]
) -> QuerySet[Profile]:
    """The environment's profiles the rules select (`live_versions`: the live version of each
    `in_audience` reference, from `rules_check`)."""
    return Profile.objects.filter(environment=environment).filter(
        compile_rules(rules, now=now, live_versions=live_versions)
    )


def consent_required_by(rules: Any, channel: str) -> bool:
    """Do the rules themselves demand granted consent on `channel` (a `{"consent": channel,
    "is": true}` that every member must satisfy: the root, or under `all` all the way down)?"""
    if not isinstance(rules, dict):
        return False
    if rules.get("consent") == channel and rules.get("is", True) is True:
        return True
    return isinstance(rules.get("all"), list) and any(consent_required_by(child, channel) for child in rules["all"])


def reachable_queryset(
    environment: Environment,
    rules: dict[str, Any],
    channel: str,
    *,
    now: datetime | None = None,
    live_versions: dict[int, int | None] | None = None,
    gate: Reachability | None = None,
) -> QuerySet[Profile]:
    """The members an audience has when it is evaluated now: the matching profiles that
    `channel` may reach. `gate`: the environment's `reachability(…)` when the caller has it.

    Rules that demand granted consent on the channel themselves (most say `{"consent":
    <channel>, "is": true}`) are not filtered on consent a second time: the duplicate
    EXISTS makes PostgreSQL hash-join the consent table with itself (EXPLAIN in
    docs/publishing.md)."""
    gate = gate or reachability(environment, channel)
    matching = matching_queryset(environment, rules, now=now or timezone.now(), live_versions=live_versions or {})
    if consent_required_by(rules, channel):
        return matching.filter(gate.addressed & gate.not_suppressed & gate.not_restricted)
    return matching.filter(gate.reachable)


def still_reachable(profiles: QuerySet[Profile], environment: Environment, channel: str) -> QuerySet[Profile]:
    """Those of `profiles` that `channel` may reach now: a rollback copies an earlier
    version's members through this, so consent is never restored to someone who withdrew
    it, nor contact to someone suppressed since or whose address is gone."""
    return profiles.filter(reachability(environment, channel).reachable)


def waterfall(remaining: Sequence[int]) -> list[dict[str, Any]]:
    """The waterfall from what is left after each step: [matching, with an address, with
    consent too, not suppressed either, reachable]; preview and publish show it alike."""
    steps = [{"step": "matching", "remaining": remaining[0], "removed": 0}]
    for step, before, after in zip(STEPS[1:], remaining[:-1], remaining[1:], strict=True):
        steps.append({"step": step, "remaining": after, "removed": max(before - after, 0)})
    steps.append({"step": "reachable", "remaining": remaining[-1], "removed": 0})
    return steps


def _lift_required_consent(rules: Any, channel: str) -> tuple[Any, bool]:
    """The rules without the `{"consent": channel, "is": true}` conditions every match must
    satisfy (at the root, or under `all` all the way down), and whether there were any.

    The grouped pass joins each profile's consent row for the channel anyway; filtering
    that row on `granted` selects exactly the same profiles as the rule's own EXISTS, and
    spares PostgreSQL a second pass over the consent table.
    """
    if not isinstance(rules, dict):
        return rules, False
    if rules.get("consent") == channel and rules.get("is", True) is True and len(rules) <= 2:
        return {"all": []}, True
    children = rules.get("all")
    if not isinstance(children, list) or len(rules) != 1:
        return rules, False
    lifted, found = [], False
    for child in children:
        kept, required = _lift_required_consent(child, channel)
        found = found or required
        if kept != {"all": []}:
            lifted.append(kept)
    return ({"all": lifted}, True) if found else (rules, False)


# PostgreSQL settings for the preview's statements (see _analytic_statements).
ANALYTIC_SETTINGS = {"jit": "off", "work_mem": "64MB"}


@contextmanager
def _analytic_statements(timeout_ms: int | None = None) -> Iterator[None]:
    """PostgreSQL, for the grouped pass and the sample: no JIT, and room to sort in memory.

    Each statement runs once, and JIT-compiling a plan of this size took longer than it
    saved (0.7–1.3 s of a 3–4 s preview at 1,000,000 profiles, bench/bench_audiences.py);
    publish switches it off for the same reason. With the default 4 MB of work_mem the
    group's sort of 120,000 matching profiles spilled to disk. `set_config(…, true)` is
    `SET LOCAL`: it ends with the transaction, so outside one the preview opens its own.
    Inside the caller's it needs no savepoint (a RELEASE would keep the settings anyway).

    `timeout_ms`: the preview budget's statement timeout (definitions/budget.py), set in the
    same statement; a statement it cancels raises OperationalError (SQLSTATE 57014).
    """
    if connection.vendor != "postgresql":
        yield
        return
    values = dict(ANALYTIC_SETTINGS)
    if timeout_ms is not None:
        values["statement_timeout"] = f"{timeout_ms}ms"
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            calls = ", ".join("set_config(%s, %s, true)" for _ in values)
            cursor.execute(f"SELECT {calls}", [part for item in values.items() for part in item])
        yield


def compute_preview(
    *,
    environment: Environment,
    rules: dict[str, Any],
    channel: str,
    live_versions: dict[int, int | None] | None = None,
    now: datetime | None = None,
    sample_size: int = SAMPLE_SIZE,
    timeout_ms: int | None = None,
) -> dict[str, Any]:
    """Count, waterfall, breakdowns and a sample (unmasked; the caller masks it).
    `timeout_ms`: cancel a statement that runs longer (PostgreSQL; the preview budget).

    Three queries whatever the data: the restrictions that apply, the grouped pass and
    the sample (on PostgreSQL one more before the last two: their settings).
    """
    now = now or timezone.now()
    live_versions = live_versions or {}
    restrictions = active_restrictions(environment, channel)
    lifted, consent_required = _lift_required_consent(rules, channel)

    # One row per (region, lifecycle stage, consent status) among the matching profiles,
    # each with a count per waterfall step. Someone leaves at the first step that applies:
    # consent is counted for profiles with an address only, suppression for those with
    # consent too, restrictions for those not suppressed either (the cheap column tests
    # first, the EXISTS probes last).
    addressed = has_address(channel)
    granted = addressed & Q(**{f"{CHANNEL_CONSENT}__status": ConsentStatus.GRANTED})
    suppressed = _suppressed(environment)
    restricted: Q | None = None
    for rule in restrictions:
        # Among profiles with granted consent: "not explicitly granted" is "granted from an implied source".
        applies = Q(region=rule.region)
        if rule.kind != RestrictionKind.BLOCKED:
            applies &= Q(**{f"{CHANNEL_CONSENT}__source__in": IMPLIED_CONSENT_SOURCES})
        restricted = applies if restricted is None else restricted | applies
    steps: dict[str, Any] = {
        "matching": Count("pk"),
        "addressed": Count("pk", filter=addressed),
        "consented": Count("pk", filter=granted),
        "suppressed": Count("pk", filter=granted & suppressed),
    }
    if restricted is not None:
        steps["restricted"] = Count("pk", filter=granted & restricted & ~suppressed)
    joined = matching_queryset(environment, lifted, now=now, live_versions=live_versions).annotate(
        **{CHANNEL_CONSENT: FilteredRelation("consents", condition=Q(consents__channel=channel))}
    )
    if consent_required:
        joined = joined.filter(Q(**{f"{CHANNEL_CONSENT}__status": ConsentStatus.GRANTED}))
    grouped = (
        joined.values("region", "lifecycle_stage", consent=F(f"{CHANNEL_CONSENT}__status")).annotate(**steps).order_by()
    )

    gate = reachability(environment, channel, restrictions=restrictions)
    sample_query = reachable_queryset(
        environment, rules, channel, now=now, live_versions=live_versions, gate=gate
    ).order_by("pk")[:sample_size]
    with _analytic_statements(timeout_ms):
        groups: list[dict[str, Any]] = [dict(group) for group in grouped]
        sample = list(sample_query)

    def total(step: str) -> int:
        return sum(group.get(step, 0) for group in groups)

    matching, addressed_count, consented = total("matching"), total("addressed"), total("consented")
    unsuppressed = consented - total("suppressed")
    reachable = unsuppressed - total("restricted")

    breakdowns = {
        "region": _breakdown(groups, "region", Region.values),
        "lifecycle_stage": _breakdown(groups, "lifecycle_stage", LifecycleStage.values),
        "consent": _breakdown(groups, "consent", ConsentStatus.values),
    }

    warnings = []
    if matching == 0:
        warnings.append(
            {"code": "no_match", "message": "No profile matches these rules.", "hint": "Loosen a condition."}
        )
    elif reachable == 0:
        warnings.append(
            {
                "code": "no_reach",
                "message": f"Profiles match, but none can be reached by {channel}.",
                "hint": "Check the waterfall for the step that removes them: no address for the channel, no "
                "consent, a suppression list or a regional restriction.",
            }
        )
    if matching and addressed_count < matching:
        without = matching - addressed_count
        one, many = ADDRESS_WORDS[channel]
        warnings.append(
            {
                "code": "no_address",
                "message": f"{without:,} of {matching:,} profiles have no {one}; they will not be members.",
                "hint": f"Add the rule {json.dumps(address_rule(channel))} to see exactly who you reach, or send "
                f"their {many} with POST /api/v1/profiles/bulk.",
            }
        )
    if addressed_count and consented < addressed_count:
        missing = addressed_count - consented
        warnings.append(
            {
                "code": "consent_missing",
                "message": f"{missing:,} of {matching:,} profiles lack {channel} consent; they will not be members.",
                "hint": f'Add the rule {{"consent": "{channel}", "is": true}} to see exactly who you reach.',
            }
        )
    for description in gate.restrictions:
        warnings.append({"code": "regional_restriction", "message": description, "hint": "Applied automatically."})

    return {
        "count": matching,
        "reachable": reachable,
        "waterfall": waterfall([matching, addressed_count, consented, unsuppressed, reachable]),
        "breakdowns": breakdowns,
        "sample": sample,
        "warnings": warnings,
    }


def _breakdown(groups: Iterable[dict[str, Any]], key: str, known: Iterable[str]) -> dict[str, int]:
    """Matching profiles per value of `key` (a missing value counts as "unknown"), in the
    order of the model's choices, then any other value, "unknown" last; no zero entries."""
    counts: dict[str, int] = defaultdict(int)
    for group in groups:
        value = group[key]
        counts[UNKNOWN if value is None else str(value)] += group["matching"]
    order = [value for value in known if value != UNKNOWN]
    order += [*sorted(value for value in counts if value not in order and value != UNKNOWN), UNKNOWN]
    return {value: counts[value] for value in order if counts.get(value)}


def reach_stats(
    environment: Environment,
    rules: dict[str, Any],
    channel: str,
    live_versions: dict[int, int | None],
    *,
    timeout_ms: int | None = None,
) -> dict[str, Any]:
    """What validate reports, in two queries: the restrictions that apply and one aggregate
    over the matching profiles (each step, and the profiles each restriction removes).
    Like the waterfall, `consented` counts those with an address and consent, and each
    removal counts those who were still there at its step."""
    restrictions = sorted(active_restrictions(environment, channel), key=lambda rule: rule.pk)
    gate = reachability(environment, channel, restrictions=restrictions)
    matching = matching_queryset(environment, rules, now=timezone.now(), live_versions=live_versions)
    consented = gate.addressed & gate.consent
    consented_unsuppressed = consented & gate.not_suppressed
    aggregates: dict[str, Any] = {
        "matching": Count("pk"),
        "addressed": Count("pk", filter=gate.addressed),
        "consented": Count("pk", filter=consented),
        "suppressed": Count("pk", filter=~gate.not_suppressed),
        "suppressed_removed": Count("pk", filter=consented & ~gate.not_suppressed),
        "restricted_removed": Count("pk", filter=consented_unsuppressed & ~gate.not_restricted),
        "reachable": Count("pk", filter=gate.reachable),
    }
    for index, restriction in enumerate(restrictions):
        aggregates[f"r{index}"] = Count("pk", filter=consented_unsuppressed & restriction_removes(restriction, channel))
    if timeout_ms is None:
        counts = matching.aggregate(**aggregates)
    else:
        with _analytic_statements(timeout_ms):
            counts = matching.aggregate(**aggregates)
    counts["restrictions"] = [
        {
            "id": restriction.pk,
            "region": restriction.region,
            "channel": restriction.channel or None,
            "kind": restriction.kind,
            "description": restriction.description,
            "removes": counts.pop(f"r{index}"),
        }
        for index, restriction in enumerate(restrictions)
    ]
    return counts
