"""`manage.py audit_verify [--environment SLUG [--from ID]] [--json]`: check every audit chain.

Walks each environment's hash chain from its first event (as `GET /audit-events/verify`
does for one) and prints one line per environment. Exits 1 when a chain is broken,
naming the first broken row, so a scheduler or CI job can alert on it; exits 2 for an
unknown environment. docs/audit.md says what to do when it fails.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.audit.chain import check_chain
from governance.audit.selectors import chain_report_as_dict
from governance.models import AuditEvent, Environment

NO_ENVIRONMENT = "(no environment)"


class Command(BaseCommand):
    help = "Verify the audit log's hash chain of every environment (or one); exit 1 when one is broken."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--environment", default=None, help="Check only this environment (its slug).")
        parser.add_argument(
            "--from",
            dest="from_id",
            type=int,
            default=None,
            metavar="ID",
            help="With --environment: start at event ID, taking its prev_hash as given (after a recorded incident, "
            "to check what was written since; see docs/audit.md).",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object per environment, as the API answers."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug: str | None = options["environment"]
        from_id: int | None = options["from_id"]
        if from_id is not None and not slug:
            raise CommandError("--from names an event of one chain; give --environment too.", returncode=2)
        if slug:
            environment = Environment.objects.filter(slug=slug).first()
            if environment is None:
                known = ", ".join(Environment.objects.values_list("slug", flat=True))
                raise CommandError(f"There is no environment {slug!r}. Use one of: {known}.", returncode=2)
            chains: list[tuple[int | None, str]] = [(environment.pk, environment.slug)]
        else:
            chains = list(Environment.objects.order_by("id").values_list("id", "slug"))
            # Events recorded without an environment form a chain of their own.
            if AuditEvent.objects.filter(environment__isnull=True).exists():
                chains.append((None, NO_ENVIRONMENT))

        broken: list[str] = []
        for env_id, name in chains:
            report = check_chain(env_id, from_id=from_id)
            if options["json"]:
                self.stdout.write(json.dumps(chain_report_as_dict(report, name if env_id else None)))
            elif report.first_broken is None:
                head = f", newest #{report.head_id} {report.head_hash[:12]}…" if report.head_id else ""
                start = f" from #{from_id}" if from_id is not None else ""
                self.stdout.write(f"{name}: intact{start}, {report.checked:,} events checked{head}")
            else:
                self.stdout.write(
                    f"{name}: BROKEN at event #{report.first_broken.event_id} "
                    f"({report.checked:,} events checked): {report.first_broken.reason}"
                )
            if report.first_broken is not None:
                broken.append(f"{name} at event #{report.first_broken.event_id} ({report.first_broken.reason})")

        if broken:
            raise CommandError(
                f"{len(broken)} of {len(chains)} audit chain(s) broken: {'; '.join(broken)}. "
                "Do not delete or rewrite anything; see docs/audit.md, 'When verify fails'.",
                returncode=1,
            )
