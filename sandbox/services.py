"""sandbox_reset: rebuild a synthetic environment's profiles, consent and events from a seed."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date

from django.db import connection, transaction

from audiences.catalogue import services as catalogue
from governance import outbox, policy
from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import DataKind, Environment, Outcome
from marketerapi.problems import ApplicationError, InvalidInput
from sandbox import loaders
from sandbox import scenarios as scenario_data
from sandbox.generator import SandboxData, reset_anchor, scenario_names

logger = logging.getLogger(__name__)

MAX_PROFILES = 5_000_000
# Below this many profiles, autovacuum's own ANALYZE is soon enough.
ANALYZE_FROM_PROFILES = 10_000


class EnvironmentNotSynthetic(ApplicationError):
    status = 409
    code = "environment_not_synthetic"
    title = "Only a synthetic environment can be reset"
    hint = "Reset the sandbox (or another environment whose data kind is synthetic) instead."


@dataclass(frozen=True)
class ResetSummary:
    environment: str
    seed: int
    profiles: int  # random profiles asked for
    scenario_profiles: int
    anchor: date
    method: str  # "copy" (PostgreSQL) or "batched" (SQLite)
    loaded: dict[str, int]
    deleted: dict[str, int]
    duration_seconds: float
    scenarios: list[str] = field(default_factory=list)
    audit_event_id: int | None = None

    @property
    def total_profiles(self) -> int:
        return self.loaded.get("profiles", 0)

    @property
    def total_rows(self) -> int:
        return sum(self.loaded.values())


def _refuse(actor: Actor, environment: Environment, error: ApplicationError) -> None:
    # Recorded in its own transaction, like policy.require's denials, so it outlives the refusal.
    with transaction.atomic():
        audit.record(actor, "sandbox.reset", environment, outcome=Outcome.DENIED, reasons=[error.detail], changes={})
    raise error


def sandbox_reset(
    *, actor: Actor, environment: Environment, profiles: int, seed: int, anchor: date | None = None
) -> ResetSummary:
    """Replace every profile, consent, ledger row and profile event of a synthetic environment.

    Loads `profiles` random profiles generated from `seed` plus the named scenarios, in one
    transaction with one audit event and one `sandbox.reset` domain event: a reset either
    happens whole or not at all. Event times count back from `anchor` (default: today,
    UTC) so that recency rules match; everything else depends on the seed alone.
    """
    decision = policy.require(actor, "sandbox.reset", environment)
    if actor.environment.pk != environment.pk:
        _refuse(
            actor,
            environment,
            policy.PolicyDenied(
                f"You act in {actor.environment.slug!r} and cannot reset {environment.slug!r}.",
                hint=f"Act in the {environment.slug!r} environment to reset it.",
                rule="environment",
            ),
        )
    if environment.data_kind != DataKind.SYNTHETIC:
        _refuse(
            actor,
            environment,
            EnvironmentNotSynthetic(
                f"Environment {environment.slug!r} holds {environment.get_data_kind_display().lower()} data "
                f"(data kind {environment.data_kind!r}); a reset deletes every profile, consent and event in it, "
                "so only environments whose data kind is 'synthetic' can be reset."
            ),
        )
    if not 0 <= profiles <= MAX_PROFILES:
        raise InvalidInput(
            f"profiles must be between 0 and {MAX_PROFILES:,}; got {profiles:,}.",
            hint="Ask for fewer profiles; a million is plenty for load tests.",
        )
    if seed < 0:
        raise InvalidInput(f"seed must be 0 or more; got {seed}.", hint="Use any non-negative integer.")

    data = SandboxData(seed=seed, profiles=profiles, anchor=anchor or reset_anchor())
    started = time.monotonic()
    with transaction.atomic():
        # Two resets of one environment at once would interleave their deletes and loads.
        # FOR NO KEY UPDATE serializes them without blocking inserts that reference the row.
        Environment.objects.select_for_update(no_key=True).filter(pk=environment.pk).first()
        deleted = loaders.delete_environment_data(environment.pk)
        counts, method = loaders.load(data, environment.pk)
        # The custom attribute keys, event types and properties of what was loaded: set-based.
        catalogue.rebuild(environment=environment)
        restrictions = _ensure_scenario_restrictions(environment)
        duration = round(time.monotonic() - started, 3)
        loaded = counts.as_dict()
        after = {
            **loaded,
            "seed": seed,
            "random_profiles": profiles,
            "scenario_profiles": data.scenario_profiles,
            "anchor": data.anchor.isoformat(),
            "method": method,
            "duration_seconds": duration,
            "regional_restrictions": restrictions,
        }
        event = audit.record(
            actor, "sandbox.reset", environment, decision=decision, changes={"before": deleted, "after": after}
        )
        outbox.emit(
            "sandbox.reset",
            environment,
            {
                "environment": environment.slug,
                "seed": seed,
                "profiles": profiles,
                "scenario_profiles": data.scenario_profiles,
                "scenarios": scenario_names(),
                "anchor": data.anchor.isoformat(),
                "counts": loaded,
            },
            environment=environment,
        )
    if connection.vendor == "postgresql" and data.total_profiles >= ANALYZE_FROM_PROFILES:
        # Fresh planner statistics, so the first preview after a big reset picks good plans.
        _analyze()
    summary = ResetSummary(
        environment=environment.slug,
        seed=seed,
        profiles=profiles,
        scenario_profiles=data.scenario_profiles,
        anchor=data.anchor,
        method=method,
        loaded=loaded,
        deleted=deleted,
        duration_seconds=round(time.monotonic() - started, 3),
        scenarios=scenario_names(),
        audit_event_id=event.pk,
    )
    logger.info("sandbox %s reset: %s rows (seed %s) in %.1f s", environment.slug, summary.total_rows, seed, duration)
    return summary


def _ensure_scenario_restrictions(environment: Environment) -> list[str]:
    """Make the regional restrictions the scenarios rely on exist and be active.

    They are configuration rather than data, so a reset neither deletes them nor touches
    any other restriction; it only puts back what the scenario figures assume.
    """
    from audiences.models import RegionalRestriction

    ensured = []
    for spec in scenario_data.RESTRICTIONS:
        rule, created = RegionalRestriction.objects.get_or_create(
            environment=environment,
            region=spec.region,
            channel=spec.channel,
            kind=spec.kind,
            defaults={"description": spec.description, "is_active": True},
        )
        if not created and not rule.is_active:
            rule.is_active = True
            rule.save(update_fields=["is_active"])
        ensured.append(rule.description)
    return ensured


def _analyze() -> None:
    from audiences.models import Consent, ConsentChange, Profile, ProfileEvent

    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in (Profile, Consent, ConsentChange, ProfileEvent):
            cursor.execute(f"ANALYZE {quote(model._meta.db_table)}")
