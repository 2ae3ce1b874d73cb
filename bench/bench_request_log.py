"""Benchmark: the request log's cost on a governed read, under gunicorn.

`GET /api/v1/profiles/{id}` with a Bearer token (authentication, rate limit, policy,
masking) served by two gunicorns on the same PostgreSQL, one with the request log on
(REQUEST_LOG_ENABLED=1: a row queued per request, written in batches by a writer thread)
and one with it off, loaded alternately so drift on a shared machine hits both alike.
The ratio is throughput with the log over throughput without it. Goal: at most a 1.05x
loss, i.e. a ratio ≥ 1/1.05 ≈ 0.952.

    python bench/run.py bench_request_log
    BENCH_SECONDS=3 BENCH_ROUNDS=1 python bench/bench_request_log.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench.bench_api_read import (  # noqa: E402
    check_answers,
    combine,
    config,
    gunicorn,
    measure,
    prepare,
    run_load,
    server_env,
)

GOAL_LOSS = 1.05  # throughput with the log is at least 1/1.05 of it without


def _rows_written(env: dict[str, str]) -> int:
    from bench.bench_api_read import manage

    output = manage(env, "shell", "-c", "from governance.models import RequestLog; print(RequestLog.objects.count())")
    return int(output.strip().splitlines()[-1])


def main() -> list[dict[str, Any]]:
    from bench.common import ensure_database

    cfg = config()
    ensure_database(cfg["database_url"])
    env_on = server_env(cfg, REQUEST_LOG_ENABLED="1")
    env_off = server_env(cfg, REQUEST_LOG_ENABLED="0")
    fixture = prepare(env_on)
    path = f"/api/v1/profiles/{fixture['profile_id']}"
    auth = {"Authorization": f"Bearer {fixture['token']}"}
    before = _rows_written(env_on)

    on_runs, off_runs = [], []
    # One server at a time would let drift between them decide; two at once, loaded in turn.
    workers = max(1, cfg["workers"] // 2)
    with gunicorn(env_on, workers) as port_on, gunicorn(env_off, workers) as port_off:
        check_answers(port_on, path, auth)
        check_answers(port_off, path, auth)
        run_load(port_on, path, auth, cfg["warmup"], cfg["connections"])
        run_load(port_off, path, auth, cfg["warmup"], cfg["connections"])
        for _ in range(cfg["rounds"]):
            on_runs.append(measure(port_on, path, auth, cfg))
            off_runs.append(measure(port_off, path, auth, cfg))
    written = _rows_written(env_on) - before
    on, off = combine(on_runs), combine(off_runs)
    ratio = on.requests_per_second / off.requests_per_second
    return [
        {
            "name": "Request log: governed read with the log on vs off, throughput",
            "ours": round(on.requests_per_second, 1),
            "baseline": round(off.requests_per_second, 1),
            "unit": "req/s",
            "ratio": round(ratio, 3),
            "goal": f"≥ {1 / GOAL_LOSS:.3f} (≤ {GOAL_LOSS}x loss)",
            "notes": f"GET /api/v1/profiles/{{id}}, Bearer token; two gunicorns of {workers} sync worker(s) each, "
            f"{on.tool} {cfg['connections']} connections, {cfg['rounds']}×{cfg['seconds']:g} s alternating; "
            f"medians {on.median_ms:.2f} vs {off.median_ms:.2f} ms; {written:,} log rows written (warm-up "
            "included) of the log-on server's requests",
        }
    ]


if __name__ == "__main__":
    for row in main():
        print(json.dumps(row, ensure_ascii=False))
