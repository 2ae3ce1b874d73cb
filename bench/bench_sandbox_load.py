"""Benchmark: `sandbox_reset` of 1,000,000 profiles on PostgreSQL against a raw COPY of the same rows.

ours      the real service (`sandbox.services.sandbox_reset`, system actor through the cli
          door) into an empty sandbox: generate, COPY profiles, consent, the consent ledger
          and profile events, check the foreign keys, audit, emit, commit, ANALYZE.
baseline  the very same rows, exported from the database after our load into memory
          *before* timing, COPY-ed back into the same tables (emptied, same indexes and
          foreign keys) in one transaction, commit included. It is the floor: what
          PostgreSQL needs to ingest these rows when nothing has to be generated.

Goal: ours ≤ 2x the baseline.

Database: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/marketerapi_bench);
created and migrated when missing. The benchmark loads and empties an environment of its own
(`bench-sandbox`, synthetic), so it leaves other data in that database alone.

    python bench/bench_sandbox_load.py --profiles 1000000      # prints the rows
    main() -> list[dict]                                       # for bench/run.py

The measurement runs in a child process so that its Django settings (the bench database)
never mix with those of the caller.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/marketerapi_bench"
GOAL_RATIO = 2.0
MARKER = "BENCH-ROWS:"


def main(profiles: int = 1_000_000, seed: int = 42) -> list[dict[str, Any]]:
    """Run the benchmark in a child process and return its result rows."""
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "marketerapi.settings",
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-secret-key-" + "x" * 40,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--profiles", str(profiles), "--seed", str(seed)]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise RuntimeError(f"bench_sandbox_load failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


# --- the child ----------------------------------------------------------------------


BENCH_ENVIRONMENT = "bench-sandbox"


def _environment() -> Any:
    """A synthetic environment of the benchmark's own, so other benchmarks' sandbox rows stay apart."""
    from governance.models import DataKind, Environment

    environment, _ = Environment.objects.get_or_create(
        slug=BENCH_ENVIRONMENT,
        defaults={
            "name": "Bench sandbox",
            "purpose": "Loaded and emptied by bench/bench_sandbox_load.py.",
            "data_kind": DataKind.SYNTHETIC,
        },
    )
    return environment


def _empty(environment_id: int) -> None:
    """Empty the bench environment set-based, VACUUM, CHECKPOINT: each timed load starts alike."""
    from django.db import connection, transaction

    from audiences.models import Consent, ConsentChange, Profile, ProfileEvent
    from sandbox.loaders import delete_environment_data

    with transaction.atomic():
        delete_environment_data(environment_id)
    with connection.cursor() as cursor:
        for model in (Profile, Consent, ConsentChange, ProfileEvent):
            cursor.execute(f"VACUUM {connection.ops.quote_name(model._meta.db_table)}")
        cursor.execute("CHECKPOINT")


def _export(environment_id: int) -> dict[str, bytes]:
    """The rows our load wrote, in COPY text format, exactly as the loader's COPY lists them."""
    from django.db import connection

    from audiences.models import Profile
    from sandbox.loaders import COPY_COLUMNS

    quote = connection.ops.quote_name
    in_env = (
        f"{quote('profile_id')} IN (SELECT id FROM {quote(Profile._meta.db_table)} "
        f"WHERE environment_id = {int(environment_id)})"
    )
    buffers: dict[str, bytes] = {}
    with connection.cursor() as cursor:
        for label, (model, names) in COPY_COLUMNS.items():
            columns = ", ".join(quote(model._meta.get_field(n).column) for n in names)
            where = f"environment_id = {int(environment_id)}" if model is Profile else in_env
            query = f"COPY (SELECT {columns} FROM {quote(model._meta.db_table)} WHERE {where} ORDER BY id) TO STDOUT"
            parts: list[bytes] = []
            with cursor.copy(query) as copy:
                for block in copy:
                    parts.append(bytes(block))
            buffers[label] = b"".join(parts)
    return buffers


def _baseline(buffers: dict[str, bytes]) -> float:
    from django.db import connection, transaction

    from sandbox.loaders import copy_statements

    statements = copy_statements()
    step = 1 << 20
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for label, sql in statements.items():
            data = memoryview(buffers[label])
            with cursor.copy(sql) as copy:
                for i in range(0, len(data), step):
                    copy.write(data[i : i + step])
    return time.perf_counter() - started


def _counts(environment_id: int) -> dict[str, int]:
    from audiences.models import Consent, ConsentChange, Profile, ProfileEvent

    return {
        "profiles": Profile.objects.filter(environment_id=environment_id).count(),
        "consents": Consent.objects.filter(profile__environment_id=environment_id).count(),
        "consent_changes": ConsentChange.objects.filter(profile__environment_id=environment_id).count(),
        "profile_events": ProfileEvent.objects.filter(profile__environment_id=environment_id).count(),
    }


def child(profiles: int, seed: int) -> list[dict[str, Any]]:
    from bench.common import ensure_database

    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("bench_sandbox_load needs PostgreSQL (BENCH_DATABASE_URL)")
    call_command("migrate", interactive=False, verbosity=0)

    from governance.actors import Actor
    from governance.models import Door
    from sandbox.services import sandbox_reset

    environment = _environment()
    _empty(environment.pk)
    started = time.perf_counter()
    summary = sandbox_reset(
        actor=Actor.system(environment, door=Door.CLI), environment=environment, profiles=profiles, seed=seed
    )
    ours = time.perf_counter() - started
    rows = summary.total_rows

    buffers = _export(environment.pk)
    size_mb = sum(len(b) for b in buffers.values()) / 1e6
    _empty(environment.pk)
    baseline = _baseline(buffers)
    if _counts(environment.pk) != summary.loaded:
        raise SystemExit(f"baseline loaded {_counts(environment.pk)}, ours {summary.loaded}")
    del buffers
    _empty(environment.pk)  # leave the bench database small

    detail = ", ".join(f"{n:,} {label.replace('_', ' ')}" for label, n in summary.loaded.items())
    common = (
        f"{rows:,} rows ({detail}); PostgreSQL {connection.pg_version // 10000}, "
        f"one transaction, indexes and deferred FK checks included."
    )
    return [
        {
            "name": f"sandbox_reset: load {profiles:,} profiles (seconds)",
            "ours": round(ours, 2),
            "baseline": round(baseline, 2),
            "unit": "s",
            "ratio": round(ours / baseline, 2),
            "goal": f"≤ {GOAL_RATIO}",
            "notes": f"ours = the sandbox_reset service (generate + COPY + audit + ANALYZE); baseline = raw COPY "
            f"of the same {size_mb:,.0f} MB of rows, pre-generated in memory. {common}",
        },
        {
            "name": f"sandbox_reset: load {profiles:,} profiles (throughput)",
            "ours": round(rows / ours),
            "baseline": round(rows / baseline),
            "unit": "rows/s",
            "ratio": round((rows / ours) / (rows / baseline), 2),
            "goal": f"≥ {1 / GOAL_RATIO}",
            "notes": f"rows per second over all four tables. {common}",
        },
    ]


def _print(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(
            f"{row['name']}: ours {row['ours']:,} {row['unit']}, baseline {row['baseline']:,} {row['unit']}, "
            f"ratio {row['ratio']} (goal {row['goal']})\n    {row['notes']}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(MARKER + json.dumps(child(args.profiles, args.seed)), flush=True)
    else:
        _print(main(args.profiles, args.seed))
