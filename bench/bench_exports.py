"""Benchmark: exports and consent withdrawal after publish (issue 13), on PostgreSQL.

1. Export — the members of a live version of N profiles (default 1,000,000) written as CSV
   by the real path (`export_create`: policy, quota, job, audit; then the job's runner:
   server-side cursor, batches, progress, the temporary file renamed on success), a PII
   export (nothing to mask) against `COPY (SELECT … same columns …) TO STDOUT WITH CSV
   HEADER` into a file. Goal ≤ 2x. A masked export (email masked in Python) is a second,
   informational row.
2. Memory — the runner's peak Python heap (tracemalloc) exporting N/10 against N rows.
   Goal: flat, within 1.2x.
3. Consent withdrawal — one consent sync withdrawing email for 10,000 profiles who are
   members of 20 live email audiences: the sync with the removal from the live versions
   (one DELETE … RETURNING, the versions' counts, the destinations' delivery queued)
   against the same sync without it. The added time is the difference; informational.

Sizes: BENCH_EXPORT_ROWS (default 1,000,000); BENCH_WITHDRAW (10,000), BENCH_AUDIENCES (20).

    python bench/run.py bench_exports             # or: make bench
    BENCH_EXPORT_ROWS=20000 python bench/bench_exports.py   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import MARKER, run_child  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/marketerapi_bench"
ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "1000000"))
WITHDRAW = int(os.environ.get("BENCH_WITHDRAW", "10000"))
AUDIENCES = int(os.environ.get("BENCH_AUDIENCES", "20"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
ENVIRONMENT = "bench-exports"
FIELDS = ["external_id", "email", "region", "lifecycle_stage"]


def main(verbose: bool = False) -> list[dict[str, Any]]:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    exports_root = tempfile.mkdtemp(prefix="bench-exports-")
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
        "EXPORTS_ROOT": exports_root,
    }
    env.pop("CELERY_BROKER_URL", None)  # jobs run in-process
    return run_child(__file__, env, verbose=verbose)


# --- the child ------------------------------------------------------------------------------


def _row(name: str, ours: float, baseline: float, unit: str, goal: str, notes: str) -> dict[str, Any]:
    ratio = round(ours / baseline, 2) if baseline else None
    return {
        "name": name,
        "ours": round(ours, 3),
        "baseline": round(baseline, 3),
        "unit": unit,
        "ratio": ratio,
        "goal": goal,
        "notes": notes,
    }


def _setup() -> dict[str, Any]:
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction
    from django.utils import timezone

    from audiences.models import Audience, AudienceState, AudienceVersion, Profile, VersionState
    from governance.actors import Actor
    from governance.models import DataKind, Door, Environment, QuotaPolicy

    environment, _ = Environment.objects.get_or_create(
        slug=ENVIRONMENT,
        defaults={"name": "Bench exports", "purpose": "bench/bench_exports.py", "data_kind": DataKind.SYNTHETIC},
    )
    team = Group.objects.get_or_create(name="growth")[0]
    loaded = Profile.objects.filter(environment=environment).count()
    if loaded != ROWS:
        with transaction.atomic(), connection.cursor() as cursor:
            Audience.objects.filter(environment=environment).update(live_version=None)
            AudienceVersion.objects.filter(audience__environment=environment).delete()
            Audience.objects.filter(environment=environment).delete()
            cursor.execute(
                "DELETE FROM audiences_consent c USING audiences_profile p "
                "WHERE c.profile_id = p.id AND p.environment_id = %s",
                [environment.pk],
            )
            cursor.execute("DELETE FROM audiences_profile WHERE environment_id = %s", [environment.pk])
            cursor.execute(
                "INSERT INTO audiences_profile (environment_id, external_id, email, phone, region, lifecycle_stage, "
                "attributes, created_at, updated_at) "
                "SELECT %s, 'b-' || g, 'person' || g || '@example.test', '+4477009' || lpad(g::text, 5, '0'), "
                "(ARRAY['EU','UK','NA','APAC'])[1 + g %% 4], 'customer', '{}'::jsonb, now(), now() "
                "FROM generate_series(1, %s) g",
                [environment.pk, ROWS],
            )
            cursor.execute(
                "INSERT INTO audiences_consent (profile_id, channel, status, source, captured_at, updated_at) "
                "SELECT id, 'email', 'granted', 'bench', now() - interval '1 day', now() "
                "FROM audiences_profile WHERE environment_id = %s",
                [environment.pk],
            )
    now = timezone.now()

    def live_audience(name: str, limit: int) -> Audience:
        audience, _ = Audience.objects.get_or_create(
            environment=environment,
            name=name,
            defaults={"owner_team": team, "channel": "email", "purpose": "bench", "description": "bench", "rules": {}},
        )
        if audience.live_version_id:
            return audience
        with transaction.atomic():
            version = AudienceVersion.objects.create(
                audience=audience, number=1, rules={}, channel="email", state=VersionState.READY, built_at=now
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO audiences_membership (version_id, profile_id) "
                    "SELECT %s, id FROM audiences_profile WHERE environment_id = %s ORDER BY id LIMIT %s",
                    [version.pk, environment.pk, limit],
                )
                members = cursor.rowcount
            version.members = version.matching = members
            version.save(update_fields=["members", "matching"])
            audience.live_version = version
            audience.state = AudienceState.PUBLISHED
            audience.save(update_fields=["live_version", "state"])
        return audience

    everyone = live_audience("bench export all", ROWS)
    small = live_audience("bench export tenth", max(ROWS // 10, 1))
    reviewer, _ = User.objects.get_or_create(username="bench-compliance")
    reviewer.groups.add(Group.objects.get_or_create(name="compliance_reviewer")[0])
    analyst, _ = User.objects.get_or_create(username="bench-export-analyst")
    analyst.groups.add(Group.objects.get_or_create(name="analyst")[0])
    for name, action, user in (
        ("export-pii", "export.create_pii", reviewer),
        ("export-masked", "export.create", analyst),
    ):
        QuotaPolicy.objects.get_or_create(
            name=name,
            user=user,
            defaults={"action": action, "period": "month", "limit": 1_000_000, "description": "bench"},
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audiences_profile")
        cursor.execute("ANALYZE audiences_membership")
    return {
        "environment": environment,
        "everyone": everyone,
        "small": small,
        "reviewer": Actor(user=reviewer, environment=environment, door=Door.API, request_id="bench"),
        "analyst": Actor(user=analyst, environment=environment, door=Door.API, request_id="bench"),
        "team": team,
    }


def _export(actor: Any, audience: Any, *, pii: bool) -> Any:
    from audiences.exports import runner
    from audiences.exports.services import export_create
    from audiences.models import Export

    started = export_create(actor=actor, audience=audience, format="csv", fields=FIELDS, pii=pii)
    assert started.result is not None
    export = started.result.export
    runner.export_job_run(export.job_id)
    done = Export.objects.get(pk=export.pk)
    assert done.state == "ready", (done.state, done.error)
    return done


def _copy(audience: Any, target: Path) -> int:
    from django.db import connection

    sql = (
        "COPY (SELECT p.external_id, p.email, p.region, p.lifecycle_stage FROM audiences_membership m "
        "JOIN audiences_profile p ON p.id = m.profile_id "
        f"WHERE m.version_id = {int(audience.live_version_id)} ORDER BY m.profile_id) "
        "TO STDOUT WITH (FORMAT csv, HEADER)"
    )
    connection.ensure_connection()
    size = 0
    with connection.connection.cursor() as cursor, open(target, "wb") as out:  # type: ignore[union-attr]
        with cursor.copy(sql) as copy:
            for chunk in copy:
                out.write(chunk)
                size += len(chunk)
    return size


def bench_export(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    ours, masked, baseline = [], [], []
    target = Path(tempfile.mkdtemp()) / "copy.csv"
    for _ in range(RUNS):
        started = time.perf_counter()
        _copy(ctx["everyone"], target)
        baseline.append(time.perf_counter() - started)
        started = time.perf_counter()
        export = _export(ctx["reviewer"], ctx["everyone"], pii=True)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        _export(ctx["analyst"], ctx["everyone"], pii=False)
        masked.append(time.perf_counter() - started)
    median_ours, median_base = statistics.median(ours), statistics.median(baseline)
    return [
        _row(
            f"export {ROWS:,} rows as CSV (PII export) vs COPY … TO",
            median_ours,
            median_base,
            "s",
            "≤ 2x",
            f"{export.rows:,} rows, {export.size / 1e6:.1f} MB; ours: export_create + the job (server-side cursor, "
            f"batches of 10,000, temp file renamed); median of {RUNS}",
        ),
        _row(
            f"export {ROWS:,} rows as CSV, email masked vs COPY … TO",
            statistics.median(masked),
            median_base,
            "s",
            "—",
            "informational: masking runs in Python per row",
        ),
    ]


def bench_memory(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    peaks = {}
    for key in ("small", "everyone"):
        tracemalloc.start()
        _export(ctx["reviewer"], ctx[key], pii=True)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peaks[key] = peak / 1e6
    return [
        _row(
            f"export peak Python heap, {ROWS:,} vs {max(ROWS // 10, 1):,} rows",
            peaks["everyone"],
            peaks["small"],
            "MB",
            "≤ 1.2x",
            "tracemalloc peak during export_create + the job; flat means constant memory",
        )
    ]


def bench_withdrawal(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    from django.db import transaction
    from django.utils import timezone

    from audiences.models import Profile
    from audiences.profiles import services as profile_services
    from audiences.publishing import withdrawal
    from governance.actors import Actor
    from governance.models import Door

    environment = ctx["environment"]
    audiences = [ctx["everyone"], ctx["small"]]
    for n in range(AUDIENCES - len(audiences)):
        from django.db import connection

        from audiences.models import Audience, AudienceState, AudienceVersion, VersionState

        audience, _ = Audience.objects.get_or_create(
            environment=environment,
            name=f"bench withdrawal {n}",
            defaults={
                "owner_team": ctx["team"],
                "channel": "email",
                "purpose": "bench",
                "description": "bench",
                "rules": {},
            },
        )
        if audience.live_version_id is None:
            version = AudienceVersion.objects.create(
                audience=audience, number=1, rules={}, channel="email", state=VersionState.READY
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO audiences_membership (version_id, profile_id) SELECT %s, id FROM audiences_profile "
                    "WHERE environment_id = %s ORDER BY id LIMIT %s",
                    [version.pk, environment.pk, max(WITHDRAW * 5, 1)],
                )
            audience.live_version = version
            audience.state = AudienceState.PUBLISHED
            audience.save(update_fields=["live_version", "state"])
        audiences.append(audience)
    ids = list(
        Profile.objects.filter(environment=environment).order_by("pk").values_list("external_id", flat=True)[:WITHDRAW]
    )
    actor = Actor.system(environment, door=Door.CLI, request_id="bench")

    def sync(status: str) -> float:
        now = timezone.now()
        updates = [
            {"external_id": x, "channel": "email", "status": status, "source": "bench", "captured_at": now} for x in ids
        ]
        started = time.perf_counter()
        profile_services.consent_sync(actor=actor, updates=updates)
        return time.perf_counter() - started

    with_removal, without = [], []
    original = profile_services.remove_withdrawn
    warm: list[float] = []
    for run in range(RUNS + 1):
        if run == 0:
            # A warm-up of both, not counted: the first sync reads cold pages.
            pass
        # Each run in a transaction rolled back, so every run withdraws the same members.
        for into, patched in (((warm if run == 0 else with_removal), False), ((warm if run == 0 else without), True)):
            try:
                with transaction.atomic():
                    if patched:
                        profile_services.remove_withdrawn = lambda **kwargs: withdrawal.Removal()
                    into.append(sync("denied"))
                    raise _Rollback
            except _Rollback:
                pass
            finally:
                profile_services.remove_withdrawn = original
    ours, base = statistics.median(with_removal), statistics.median(without)
    return [
        _row(
            f"consent sync withdrawing {WITHDRAW:,} profiles in {AUDIENCES} live audiences vs the same sync without",
            ours,
            base,
            "s",
            "—",
            f"added time {ours - base:.3f} s: one DELETE … RETURNING, one UPDATE of the versions, the delivery queued "
            "(no destination in the bench environment)",
        )
    ]


class _Rollback(Exception):
    pass


def child() -> list[dict[str, Any]]:
    from bench.common import ensure_database

    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("bench_exports needs PostgreSQL (BENCH_DATABASE_URL)")
    call_command("migrate", interactive=False, verbosity=0)
    ctx = _setup()
    return [*bench_export(ctx), *bench_memory(ctx), *bench_withdrawal(ctx)]


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
