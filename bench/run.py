"""`make bench`: run every bench/bench_*.py and write bench/results.md.

Each benchmark module exposes `main() -> list[dict]`, one dict per row with the keys
name, ours, baseline, unit, ratio, goal, notes. The baseline is measured in the same
run on the same machine, so the ratio is what to read and compare across runs; the
absolute numbers only describe this machine. Nothing here asserts an absolute time.

Order: bench_sandbox_load, bench_api_read, then any other bench_*.py alphabetically.
A module that is missing is listed as skipped; one that fails is listed with its
error, and the run exits non-zero after writing the results of the others. Raw results
are kept in bench/results.json, so running one benchmark keeps the others' rows.

    python bench/run.py                    # all
    python bench/run.py bench_api_read     # some; the others keep their latest results

Benchmarks run against PostgreSQL (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/marketerapi_bench, created when missing), never the
development database: DATABASE_URL is set to it for the modules, and
DJANGO_SETTINGS_MODULE defaults to bench.settings_bench.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import database_url, ensure_database, git_commit, machine  # noqa: E402

BENCH_DIR = ROOT / "bench"
RESULTS = BENCH_DIR / "results.md"
RESULTS_JSON = BENCH_DIR / "results.json"
ORDER = ["bench_sandbox_load", "bench_api_read"]
COLUMNS = ["name", "ours", "baseline", "unit", "ratio", "goal", "notes"]


def discover(selected: list[str]) -> list[str]:
    present = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    names = ORDER + [name for name in present if name not in ORDER]
    if selected:
        unknown = [s for s in selected if s not in names]
        if unknown:
            raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}")
        names = [name for name in names if name in selected]
    return names


def run_one(name: str) -> tuple[list[dict[str, Any]], str, float]:
    """(rows, status, seconds); status is "ok", "skipped: …" or "failed: …"."""
    if not (BENCH_DIR / f"{name}.py").exists():
        return [], f"skipped: bench/{name}.py does not exist yet", 0.0
    started = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{name}")
        entry = getattr(module, "main", None)
        if entry is None:
            return [], f"skipped: bench/{name}.py has no main()", 0.0
        rows = list(entry())
    except Exception as exc:
        traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [], f"failed: {type(exc).__name__}: {first_line}", time.monotonic() - started
    for row in rows:
        missing = [key for key in COLUMNS if key not in row]
        if missing:
            return rows, f"failed: a row lacks {', '.join(missing)}", time.monotonic() - started
    return rows, "ok", time.monotonic() - started


def cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:,.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def load_previous() -> dict[str, Any]:
    try:
        return dict(json.loads(RESULTS_JSON.read_text()))
    except (OSError, ValueError):
        return {}


def render(runs: dict[str, dict[str, Any]], order: list[str]) -> str:
    latest = max(runs.values(), key=lambda run: run["about"]["date"])["about"]
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/run.py) from bench/results.json; do not edit by hand.",
        "**ratio = ours ÷ baseline**, both measured in the same run on the same machine: compare ratios",
        "across runs and machines, not the absolute numbers.",
        "",
        f"- machine: {latest['cores']} cores ({latest['cpu']}), {latest['os']}",
        f"- Python {latest['python']}, PostgreSQL {latest['postgres']}",
        "- each benchmark's date, git commit and the machine's load average when it started are under Runs;",
        "  other work on the machine skews absolute numbers more than ratios",
        "",
        "| benchmark | ours | baseline | unit | ratio | goal | notes |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    names = [name for name in order if name in runs] + sorted(set(runs) - set(order))
    for name in names:
        for row in runs[name]["rows"]:
            lines.append("| " + " | ".join(cell(row.get(key)) for key in COLUMNS) + " |")
    lines += ["", "## Runs", ""]
    for name in names:
        run = runs[name]
        about = run["about"]
        took = f" in {run['seconds']:.0f} s" if run["seconds"] else ""
        lines.append(
            f"- `bench/{name}.py`: {run['status']}{took} — {about['date']}, commit {about['commit']}, "
            f"load average {about['load']}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    url = database_url()
    os.environ["BENCH_DATABASE_URL"] = url
    # Benchmarks fill and reset their database: never let one reach the development one.
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_bench")
    postgres = ensure_database(url)

    # A run of some benchmarks keeps the others' latest results.
    runs = load_previous()
    failed = False
    for name in discover(argv):
        print(f"== {name}", flush=True)
        about = {
            **machine(),
            "postgres": postgres,
            "commit": git_commit(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        rows, status, seconds = run_one(name)
        for row in rows:
            print(
                f"   {row['name']}: ours {row['ours']} {row['unit']}, baseline {row['baseline']}, "
                f"ratio {row['ratio']} (goal {row['goal']})",
                flush=True,
            )
        print(f"   {status}", flush=True)
        failed = failed or status.startswith("failed")
        runs[name] = {"rows": rows, "status": status, "seconds": round(seconds, 1), "about": about}

    RESULTS_JSON.write_text(json.dumps(runs, indent=2, ensure_ascii=False) + "\n")
    RESULTS.write_text(render(runs, discover([])))
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
