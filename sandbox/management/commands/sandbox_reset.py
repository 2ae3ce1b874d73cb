"""`manage.py sandbox_reset`: rebuild a synthetic environment from a seed (see docs/sandbox.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.actors import Actor
from governance.models import Door, Environment
from marketerapi.problems import ApplicationError
from sandbox.services import sandbox_reset

DEFAULT_PROFILES = 10_000
DEFAULT_SEED = 42


def _non_negative(value: str) -> int:
    number = int(value.replace("_", "").replace(",", ""))
    if number < 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Replace every profile, consent and profile event of a synthetic environment with seeded "
        "synthetic data plus the six named scenarios. Refuses environments that hold real data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--environment",
            default=settings.DEFAULT_ENVIRONMENT,
            help="Slug of the environment to rebuild; its data kind must be 'synthetic' (default: %(default)s).",
        )
        parser.add_argument(
            "--profiles",
            type=_non_negative,
            default=DEFAULT_PROFILES,
            help="How many random profiles to generate, besides the scenarios (default: %(default)s).",
        )
        parser.add_argument(
            "--seed",
            type=_non_negative,
            default=DEFAULT_SEED,
            help="Seed of the generator: the same seed and size give the same data (default: %(default)s).",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when the environment already has profiles (used by `make run`).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["environment"]
        environment = Environment.objects.filter(slug=slug).first()
        if environment is None:
            known = ", ".join(Environment.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"No environment {slug!r}. Known environments: {known}.")

        if options["if_empty"] and environment.is_sandbox:
            existing = environment.profiles.count()
            if existing:
                self.stdout.write(
                    f"Environment {slug!r} already has {existing:,} profiles; left as it is (--if-empty). "
                    f"Run without --if-empty to rebuild it."
                )
                return

        actor = Actor.system(environment, door=Door.CLI)
        try:
            summary = sandbox_reset(
                actor=actor, environment=environment, profiles=options["profiles"], seed=options["seed"]
            )
        except ApplicationError as error:
            raise CommandError(f"{error.detail or error.title} {error.hint}".strip()) from error

        loaded = summary.loaded
        self.stdout.write(
            self.style.SUCCESS(
                f"Environment {slug!r} reset with seed {summary.seed} in {summary.duration_seconds:.1f} s "
                f"({summary.method}): {loaded['profiles']:,} profiles ({summary.profiles:,} random + "
                f"{summary.scenario_profiles} in {len(summary.scenarios)} scenarios), {loaded['consents']:,} consents, "
                f"{loaded['consent_changes']:,} consent ledger rows, {loaded['profile_events']:,} profile events."
            )
        )
        if any(summary.deleted.values()):
            removed = ", ".join(f"{count:,} {label.replace('_', ' ')}" for label, count in summary.deleted.items())
            self.stdout.write(f"Replaced the previous data: {removed}.")
        self.stdout.write(f"Event times count back from {summary.anchor.isoformat()} 00:00 UTC. See docs/sandbox.md.")
