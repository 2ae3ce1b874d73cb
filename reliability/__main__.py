"""`python -m reliability` (make reliability): start the stack, run the drills, write the report.

    RELIABILITY_BOUNDED=1         each drill once with small sizes (CI; under 4 minutes)
    RELIABILITY_SCENARIOS=a,c,e   only these drills (default: all, in order)
    RELIABILITY_PROFILES=N        sandbox profiles (bounded 5,000; full 200,000)
    RELIABILITY_REPORT=path       where to write (default docs/reliability.md)

Exit 1 when a drill fails; the report says which and why.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from reliability.scenarios import SCENARIOS, Context, Outcome
from reliability.stack import ROOT, Stack


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_report(path: Path, rows: list[tuple[str, str, Outcome, float]], *, bounded: bool, profiles: int) -> None:
    passed = sum(1 for *_, outcome, _ in rows if outcome.passed)
    lines = [
        "# Reliability drills",
        "",
        "Written by `make reliability` (reliability/, scripts/reliability.sh) from a real run against",
        "PostgreSQL 15 (a cluster of the drills' own), Redis 7 (its own server), gunicorn with 4 sync",
        "workers, a Celery worker (concurrency 2) and Celery beat, all with production settings",
        "(DEBUG=0). Each row is one drill in `reliability/scenarios.py`; rerun one with",
        "`RELIABILITY_SCENARIOS=c make reliability`. A later issue adds its drill as one function",
        "there (the module's docstring shows how).",
        "",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {'bounded (RELIABILITY_BOUNDED=1)' if bounded else 'full'}, "
        f"{profiles:,} sandbox profiles, {os.cpu_count()} CPU cores, Python {platform.python_version()}. "
        f"**{passed} of {len(rows)} passed.**",
        "",
        "| drill | what was done | expected | observed | result | figures | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, title, outcome, seconds in rows:
        figures = ", ".join(f"{k}={v}" for k, v in outcome.figures.items())
        lines.append(
            f"| {key}) {_cell(title)} | {_cell(outcome.done)} | {_cell(outcome.expected)} | {_cell(outcome.observed)} "
            f"| {'**pass**' if outcome.passed else '**FAIL**'} | {_cell(figures)} | {seconds:.0f} |"
        )
    lines += [
        "",
        "Sizes: `RELIABILITY_BOUNDED=1` runs each drill once, small (20 load clients for 10 s, 30 webhook",
        "events, 5 fuzz examples per operation with the developer's token only); the full run uses 200",
        "clients for 60 s, 200 events and every role's token. Any size can be set with",
        "`RELIABILITY_<NAME>` (see `ctx.size(...)` in each drill). Process logs and the fuzzers' reports are",
        "in `var/reliability/`.",
        "",
        "What an open failure points at (issue 12):",
        "",
        "- f) schema drift (undocumented 400/403/429/503 on most operations, validation the",
        "  schema does not state); the fuzzers' reports list each case with a curl line.",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> int:
    bounded = os.environ.get("RELIABILITY_BOUNDED", "") not in ("", "0")
    wanted = [k for k in os.environ.get("RELIABILITY_SCENARIOS", "").split(",") if k]
    profiles = int(os.environ.get("RELIABILITY_PROFILES") or (5_000 if bounded else 200_000))
    report = Path(os.environ.get("RELIABILITY_REPORT") or ROOT / "docs" / "reliability.md")
    if not report.is_absolute():
        report = ROOT / report
    report.parent.mkdir(parents=True, exist_ok=True)
    stack = Stack()
    rows: list[tuple[str, str, Outcome, float]] = []
    began = time.monotonic()
    try:
        print(f"== preparing: PostgreSQL :{stack.postgres.port}, Redis :{stack.redis.port}, {profiles:,} profiles")
        stack.prepare(profiles)
        stack.start()
        print(f"== gunicorn on {stack.base_url}, Celery worker and beat up ({time.monotonic() - began:.0f} s)")
        context = Context(stack, bounded)
        for item in SCENARIOS:
            if wanted and item.key not in wanted:
                continue
            print(f"== {item.key}) {item.title}", flush=True)
            started = time.monotonic()
            try:
                outcome = item.run(context)
            except Exception as exc:  # a drill that breaks is a failed drill, with its reason
                traceback.print_exc()
                outcome = Outcome("(the drill raised)", "-", f"{type(exc).__name__}: {exc}"[:500], False)
            for name in ("web", "worker", "beat"):  # the next drill starts from a whole stack
                if name in stack.processes and not stack.processes[name].alive:
                    {"web": stack.start_web, "worker": stack.start_worker, "beat": stack.start_beat}[name]()
            if not stack.postgres.ready():
                stack.postgres.start()
            stack.redis.start()
            seconds = time.monotonic() - started
            print(f"   {'pass' if outcome.passed else 'FAIL'} ({seconds:.0f} s): {outcome.observed}", flush=True)
            rows.append((item.key, item.title, outcome, seconds))
    finally:
        stack.stop()
    write_report(report, rows, bounded=bounded, profiles=profiles)
    failed = [key for key, _, outcome, _ in rows if not outcome.passed]
    print(
        f"== {len(rows) - len(failed)} of {len(rows)} drills passed in {time.monotonic() - began:.0f} s; "
        f"report: {report.relative_to(ROOT) if report.is_relative_to(ROOT) else report}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
