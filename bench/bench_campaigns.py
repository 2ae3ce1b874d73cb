"""Benchmark: campaign sending and recipient freezing on PostgreSQL.

Two comparisons, ours and a hand-written baseline measured alternately in the same run
(medians), so the ratio holds on any machine:

1. Send — a campaign of BENCH_CAMPAIGN_SENDS recipients (default 100,000) through an
   adapter that does nothing (`bench-null`: `send(batch)` returns at once): the send job
   (`campaigns.sending.runner.send_job_run`: job claim, the freeze — a no-op here, the rows
   are frozen beforehand — and per batch of 1,000 the state check, the claim UPDATE …
   RETURNING, the consent and suppression re-check, rendering, the adapter call, the
   marking UPDATE and the progress heartbeat) against calling the adapter directly with
   the same batches (the same profiles read and rendered by the same `batch_payload`,
   nothing claimed, checked or recorded). Goal ≤ 1.5x.
2. Freeze — the recipients of a BENCH_CAMPAIGN_MEMBERS-member version (default 500,000):
   `campaigns.sending.freeze.freeze` (one INSERT … SELECT with the skip reasons of
   audiences/reach.py and the frequency cap) against a hand-written INSERT … SELECT of the
   same rows (the same reasons as plain CASE/EXISTS, no frequency cap). Goal ≤ 1.5x.

Data: the environment `bench-campaigns` (synthetic): profiles with an email and granted
email consent written set-based (generate_series), 1 % suppressed, one audience whose live
version holds them; reused while it holds enough.

    python bench/run.py bench_campaigns         # or: make bench ARGS=bench_campaigns
    BENCH_CAMPAIGN_SENDS=2000 BENCH_CAMPAIGN_MEMBERS=5000 python bench/bench_campaigns.py   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import MARKER, run_child  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/marketerapi_bench"
GOAL = 1.5
SENDS = int(os.environ.get("BENCH_CAMPAIGN_SENDS", "100000"))
MEMBERS = int(os.environ.get("BENCH_CAMPAIGN_MEMBERS", "500000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
ENVIRONMENT = "bench-campaigns"
BATCH = 1000


def main(verbose: bool = False) -> list[dict[str, Any]]:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "marketerapi.settings",
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-secret-key-" + "x" * 40,
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("CELERY_BROKER_URL", None)
    return run_child(__file__, env, verbose=verbose)


# --- the child ------------------------------------------------------------------------------


def _null_adapter() -> str:
    from integrations.adapters.base import Adapter, Checkpoint, DeliveryResult, HealthResult
    from integrations.adapters.registry import register

    @register
    class NullAdapter(Adapter):
        name = "bench-null"
        title = "Does nothing (benchmark)"
        sandbox_allowed = True
        send_channels = ("email", "sms", "push")
        send_batch_size = BATCH
        send_idempotent = True

        def send(self, batch: dict[str, Any], checkpoint: Checkpoint | None = None) -> DeliveryResult:
            return DeliveryResult(delivered=len(batch.get("recipients") or []), calls=1)

        def push_members(self, added: Any, removed: Any, checkpoint: Checkpoint | None = None) -> DeliveryResult:
            return DeliveryResult()

        def health(self) -> HealthResult:
            return HealthResult(ok=True, message="ok")

    return NullAdapter.name


def _setup(size: int) -> dict[str, Any]:
    """An environment with `size` profiles (email, granted consent; 1 % suppressed) and a destination."""
    from django.contrib.auth.models import Group
    from django.db import connection, transaction
    from django.utils import timezone

    from audiences.models import Profile, SuppressionList
    from governance.models import DataKind, Environment
    from integrations.models import Destination

    environment, _ = Environment.objects.get_or_create(
        slug=ENVIRONMENT,
        defaults={
            "name": "Bench campaigns",
            "purpose": "benchmarks",
            "data_kind": DataKind.SYNTHETIC,
            "change_windows": [],
        },
    )
    team, _ = Group.objects.get_or_create(name="bench-team")
    have = Profile.objects.filter(environment=environment).count()
    with transaction.atomic(), connection.cursor() as cursor:
        if have < size:
            now = timezone.now()
            cursor.execute(
                "INSERT INTO audiences_profile (environment_id, external_id, email, region, lifecycle_stage, "
                "attributes, first_name, created_at, updated_at) "
                "SELECT %s, 'bc-' || g, 'bc-' || g || '@example.test', 'EU', 'customer', '{}', 'Ann', %s, %s "
                "FROM generate_series(%s, %s) g",
                [environment.pk, now, now, have, size - 1],
            )
            cursor.execute(
                "INSERT INTO audiences_consent (profile_id, channel, status, source, captured_at, updated_at) "
                "SELECT p.id, 'email', 'granted', 'bench', %s, %s FROM audiences_profile p "
                "WHERE p.environment_id = %s AND NOT EXISTS (SELECT 1 FROM audiences_consent c "
                "WHERE c.profile_id = p.id AND c.channel = 'email')",
                [now, now, environment.pk],
            )
            suppression, _ = SuppressionList.objects.get_or_create(
                environment=environment, is_global=True, defaults={"name": "global"}
            )
            cursor.execute(
                "INSERT INTO audiences_suppressionentry (suppression_list_id, external_id, reason, added_at) "
                "SELECT %s, 'bc-' || g, 'bench', %s FROM generate_series(0, %s, 100) g",
                [suppression.pk, now, size - 1],
            )
    destination, _ = Destination.objects.get_or_create(
        environment=environment, name="bench-null", defaults={"adapter": _null_adapter(), "config": {}}
    )
    cursor_analyze()
    return {"environment": environment, "team": team, "destination": destination}


def cursor_analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "audiences_profile",
            "audiences_consent",
            "audiences_membership",
            "audiences_suppressionentry",
            "campaigns_send",
        ):
            cursor.execute(f"ANALYZE {table}")


def _campaign(ctx: dict[str, Any], name: str) -> Any:
    from campaigns.models import Campaign

    audience = ctx["audience"]
    campaign, _ = Campaign.objects.get_or_create(
        environment=ctx["environment"],
        name=name,
        defaults={
            "owner_team": ctx["team"],
            "purpose": "bench",
            "channel": "email",
            "audience": audience,
            "destination": ctx["destination"],
            "assets": {"subject": "Hi {{first_name}}", "body": "Hello {{first_name}}", "sender": "b@x.test"},
        },
    )
    # The benchmark's own setup: an active campaign on the audience's live version (saved, so history keeps it).
    campaign.version, campaign.state = audience.live_version, "active"
    campaign.save(update_fields=["version", "state"])
    return campaign


def _median(values: list[float]) -> float:
    return statistics.median(values)


def bench_send(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    from django.db import connection, transaction

    from audiences.models import Profile
    from campaigns.models import Send
    from campaigns.sending import freeze, runner
    from integrations import adapters

    campaign = _campaign(ctx, f"bench send {SENDS}")

    def ours() -> float:
        Send.objects.filter(campaign=campaign).delete()
        campaign.state = "active"
        campaign.save(update_fields=["state"])
        with transaction.atomic():
            freeze.freeze(campaign, campaign.version)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE campaigns_send")
        with transaction.atomic():
            job = runner.jobs.job_create(
                environment=campaign.environment,
                kind="campaign.send",
                target=campaign,
                params={"campaign": campaign.pk},
            )
        started = time.perf_counter()
        runner.send_job_run(job.pk)
        elapsed = time.perf_counter() - started
        sent = Send.objects.filter(campaign=campaign, state="sent").count()
        if sent != SENDS - SENDS // 100:
            raise SystemExit(f"the send job sent {sent:,}, expected {SENDS - SENDS // 100:,}")
        return elapsed

    def baseline() -> float:
        profile_ids = list(
            Send.objects.filter(campaign=campaign, state__in=["sent", "queued"])
            .order_by("id")
            .values_list("profile_id", flat=True)
        )
        started = time.perf_counter()
        adapter = adapters.build(ctx["destination"], credentials={}, reference="baseline")
        for offset in range(0, len(profile_ids), BATCH):
            chunk = profile_ids[offset : offset + BATCH]
            rows = list(Profile.objects.filter(pk__in=chunk).order_by("pk").values("pk", *runner.RECIPIENT_FIELDS))
            adapter.send(runner.batch_payload(campaign, rows))
        return time.perf_counter() - started

    ours_times, base_times = [], []
    for _ in range(RUNS):
        ours_times.append(ours())
        base_times.append(baseline())
    mine, base = _median(ours_times), _median(base_times)
    return [
        {
            "name": f"Send {SENDS:,} recipients through a do-nothing adapter vs the adapter called directly",
            "ours": round(SENDS / mine),
            "baseline": round(SENDS / base),
            "unit": "recipients/s (median)",
            "ratio": round(mine / base, 2),
            "goal": f"≤ {GOAL}",
            "notes": f"the send job (claim, re-check consent and suppression, render, send, mark, heartbeat; "
            f"batches of {BATCH:,}; the freeze beforehand, 1 % suppressed) against the same batches read, rendered "
            f"and sent directly; {RUNS} runs each, alternating; ratio is time ÷ time",
        }
    ]


HAND_WRITTEN = """
INSERT INTO campaigns_send (campaign_id, profile_id, state, reason, idempotency_key, vendor_id, created_at)
SELECT %(campaign)s, s.id, CASE WHEN s.reason = '' THEN 'queued' ELSE 'skipped' END, s.reason,
       'campaign-' || %(campaign)s || '-profile-' || s.id, '', now()
FROM (
  SELECT p.id,
         CASE WHEN NOT (p.email > '') THEN 'no_address'
              WHEN NOT EXISTS (SELECT 1 FROM audiences_consent c
                               WHERE c.profile_id = p.id AND c.channel = 'email' AND c.status = 'granted')
                THEN 'no_consent'
              WHEN EXISTS (SELECT 1 FROM audiences_suppressionentry e JOIN audiences_suppressionlist l
                             ON l.id = e.suppression_list_id
                           WHERE l.environment_id = %(environment)s AND e.external_id = p.external_id)
                OR EXISTS (SELECT 1 FROM audiences_suppressionentry e JOIN audiences_suppressionlist l
                             ON l.id = e.suppression_list_id
                           WHERE l.environment_id = %(environment)s AND e.email_hash = p.email_hash)
                THEN 'suppressed'
              ELSE '' END AS reason
  FROM audiences_membership m JOIN audiences_profile p ON p.id = m.profile_id
  WHERE m.version_id = %(version)s
) s
ON CONFLICT (campaign_id, profile_id) DO NOTHING
"""


def bench_freeze(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    from django.db import connection, transaction

    from campaigns.models import Send
    from campaigns.sending import freeze

    campaign = _campaign(ctx, f"bench freeze {MEMBERS}")

    def clear() -> None:
        Send.objects.filter(campaign=campaign).delete()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE campaigns_send")

    def ours() -> float:
        clear()
        started = time.perf_counter()
        with transaction.atomic():
            added = freeze.freeze(campaign, campaign.version)
        elapsed = time.perf_counter() - started
        if added != MEMBERS:
            raise SystemExit(f"freeze added {added:,}, expected {MEMBERS:,}")
        return elapsed

    def baseline() -> float:
        clear()
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                HAND_WRITTEN,
                {"campaign": campaign.pk, "environment": campaign.environment_id, "version": campaign.version_id},
            )
            added = cursor.rowcount
        elapsed = time.perf_counter() - started
        if added != MEMBERS:
            raise SystemExit(f"the hand-written INSERT added {added:,}, expected {MEMBERS:,}")
        return elapsed

    ours_times, base_times = [], []
    for _ in range(RUNS):
        ours_times.append(ours())
        base_times.append(baseline())
    clear()
    mine, base = _median(ours_times), _median(base_times)
    return [
        {
            "name": f"Freeze the recipients of {MEMBERS:,} members vs a hand-written INSERT … SELECT",
            "ours": round(mine, 2),
            "baseline": round(base, 2),
            "unit": "s (median)",
            "ratio": round(mine / base, 2),
            "goal": f"≤ {GOAL}",
            "notes": f"freeze.freeze (skip reasons of audiences/reach.py, committed) against the same rows and "
            f"reasons written by hand; 1 % suppressed; {RUNS} runs each, alternating",
        }
    ]


def child() -> list[dict[str, Any]]:
    from bench.common import ensure_database

    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("bench_campaigns needs PostgreSQL (BENCH_DATABASE_URL)")
    call_command("migrate", interactive=False, verbosity=0)
    ctx = _setup(max(SENDS, MEMBERS))
    rows: list[dict[str, Any]] = []
    send_ctx = dict(ctx)
    send_ctx["audience"] = _setup_audience(ctx, SENDS)
    rows += bench_send(send_ctx)
    freeze_ctx = dict(ctx)
    freeze_ctx["audience"] = _setup_audience(ctx, MEMBERS)
    rows += bench_freeze(freeze_ctx)
    return rows


def _setup_audience(ctx: dict[str, Any], size: int) -> Any:
    """An audience whose live version holds the first `size` profiles of the environment."""
    from django.db import connection, transaction
    from django.utils import timezone

    from audiences.models import Audience, AudienceState, AudienceVersion

    with transaction.atomic():
        audience, _ = Audience.objects.get_or_create(
            environment=ctx["environment"],
            name=f"bench {size}",
            defaults={
                "owner_team": ctx["team"],
                "channel": "email",
                "purpose": "bench",
                "description": "bench",
                "rules": {"attr": "region", "op": "eq", "value": "EU"},
            },
        )
        if audience.live_version_id is None or audience.live_version.members != size:
            version = AudienceVersion.objects.create(
                audience=audience,
                number=audience.versions.count() + 1,
                rules=audience.rules,
                channel="email",
                state="ready",
                built_at=timezone.now(),
                members=size,
                matching=size,
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO audiences_membership (version_id, profile_id) SELECT %s, id FROM audiences_profile "
                    "WHERE environment_id = %s ORDER BY id LIMIT %s",
                    [version.pk, ctx["environment"].pk, size],
                )
            audience.live_version = version
            audience.state = AudienceState.PUBLISHED
            audience.save(update_fields=["live_version", "state"])
    cursor_analyze()
    return audience


def _print(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(
            f"{row['name']}: ours {row['ours']:,} {row['unit']}, baseline {row['baseline']:,} {row['unit']}, "
            f"ratio {row['ratio']} (goal {row['goal']})\n    {row['notes']}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(MARKER + json.dumps(child()), flush=True)
    else:
        _print(main(verbose=True))
