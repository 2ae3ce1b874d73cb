"""Benchmark: one-profile read through the real API against a bare Django view.

`GET /api/v1/profiles/{id}` with a Bearer token (authentication, policy, masking,
serializer, problem handling) is measured against `GET /bench/bare-profile/{id}`, a
plain view doing the same query (`Profile.objects.filter(pk=…).values().first()` →
JsonResponse). Both are served by the same gunicorn (sync workers, persistent
connections: CONN_MAX_AGE=600) on PostgreSQL, in the same run, alternating, so the
ratio holds on any machine; absolute numbers do not.

A third figure shows why persistent connections are on: the bare view again under a
gunicorn started with CONN_MAX_AGE=0 (a new PostgreSQL connection per request).

Load: wrk when installed (`apt-get install wrk`), else a bounded Python keep-alive
client. Loopback only; every measurement is bounded in time.

    python bench/run.py bench_api_read        # or: make bench
    BENCH_SECONDS=4 python bench/bench_api_read.py
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench.common` importable
    sys.path.insert(0, str(ROOT))
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"

# The goals of this benchmark's rows (issue 2). Ratios are ours / baseline.
GOAL_THROUGHPUT = 0.5  # the API keeps at least half of the bare view's requests per second
GOAL_LATENCY = 2.0  # and its median latency is at most twice the bare view's
GOAL_CONN_REUSE = 1.5  # persistent connections are worth keeping on

PROFILES = 10_000  # rows in the bench sandbox, so the read is an index lookup in a real table


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    median_ms: float
    requests: int
    errors: int
    tool: str
    error_kinds: str = ""


def config() -> dict[str, Any]:
    from bench.common import database_url

    cores = os.cpu_count() or 2
    workers = int(os.environ.get("BENCH_WORKERS", str(max(2, cores))))
    return {
        "database_url": database_url(),
        "redis_url": os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        "seconds": float(os.environ.get("BENCH_SECONDS", "8")),
        "warmup": float(os.environ.get("BENCH_WARMUP_SECONDS", "2")),
        "rounds": int(os.environ.get("BENCH_ROUNDS", "2")),
        "workers": workers,
        "connections": int(os.environ.get("BENCH_CONNECTIONS", str(2 * workers))),
    }


# --- the server -------------------------------------------------------------------


def server_env(cfg: dict[str, Any], **extra: str) -> dict[str, str]:
    settings_vars = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CONN_MAX_AGE", "CELERY_BROKER_URL", "REQUIRE_SERVICES")
    env = {k: v for k, v in os.environ.items() if k not in settings_vars}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings_bench",
        DATABASE_URL=cfg["database_url"],
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
    )
    env.pop("CELERY_BROKER_URL", None)  # reads enqueue nothing; keep Celery in-process
    if redis_answers(cfg["redis_url"]):
        env["REDIS_URL"] = cfg["redis_url"]
    else:
        env.pop("REDIS_URL", None)
    env.update(extra)
    return env


def redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# Run inside `manage.py shell` against the bench database: a sandbox with PROFILES
# profiles, a developer, and a read token whose rate limit the bench cannot reach.
PREPARE = """
import json
from datetime import timedelta
from django.contrib.auth.models import Group, User
from django.utils import timezone
from audiences.models import Profile
from governance.actors import Actor
from governance.models import Environment
from governance.roles import DEVELOPER
from governance.access.services import token_issue

env = Environment.objects.get(slug="sandbox")
have = Profile.objects.filter(environment=env).count()
if have < {profiles}:
    Profile.objects.bulk_create(
        [
            Profile(environment=env, external_id=f"bench-{{i:06d}}", email=f"bench-{{i:06d}}@example.test",
                    first_name="Bench", last_name="Reader", locale="en_GB", country="GB", region="UK",
                    lifecycle_stage="customer", attributes={{"plan": "pro"}})
            for i in range(have, {profiles})
        ],
        batch_size=2000,
        ignore_conflicts=True,
    )
ids = list(Profile.objects.filter(environment=env).order_by("id").values_list("id", flat=True)[: {profiles}])
user, _ = User.objects.get_or_create(username="bench-reader")
user.groups.add(Group.objects.get(name=DEVELOPER))
issued = token_issue(
    actor=Actor.system(env, door="cli"), user=user, name="bench_api_read", scopes=["read"],
    expires_at=timezone.now() + timedelta(days=1), rate_limits={{"read": 1_000_000_000}},
)
print(json.dumps({{"profile_id": ids[len(ids) // 2], "token": issued.secret}}))
"""


def prepare(env: dict[str, str]) -> dict[str, Any]:
    manage(env, "migrate", "--noinput", timeout=600)
    output = manage(env, "shell", "-c", PREPARE.format(profiles=PROFILES))
    return json.loads(output.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(env: dict[str, str], workers: int) -> Iterator[int]:
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "marketerapi.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
        "--error-logfile",
        log.name,
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited at start:\n{Path(log.name).read_text()[-3000:]}")
            try:
                status, _ = get(port, "/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                tail = Path(log.name).read_text()[-3000:]
                raise RuntimeError(f"gunicorn did not answer /healthz within 30 s:\n{tail}")
            time.sleep(0.2)
        yield port
    except Exception:
        # Whatever went wrong, the server's own log usually says why (a 500's traceback).
        print(f"--- gunicorn log (last 4000 characters) ---\n{Path(log.name).read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        os.unlink(log.name)


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_answers(port: int, path: str, headers: dict[str, str]) -> None:
    status, body = get(port, path, headers)
    if status != 200:
        hint = " (does the endpoint exist yet?)" if status == 404 else ""
        raise RuntimeError(f"GET {path} answered {status}{hint}; the benchmark needs 200:\n{body[:1000].decode()}")


# --- load generators ----------------------------------------------------------------


def run_load(port: int, path: str, headers: dict[str, str], seconds: float, connections: int) -> Load:
    if shutil.which("wrk"):
        return run_wrk(port, path, headers, seconds, connections)
    return run_python_client(port, path, headers, seconds, connections)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def run_wrk(port: int, path: str, headers: dict[str, str], seconds: float, connections: int) -> Load:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://127.0.0.1:{port}{path}")
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    median = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\b", output, flags=re.MULTILINE)
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    timeouts = re.search(r"Socket errors:.*timeout (\d+)", output)
    errors += int(timeouts.group(1)) if timeouts else 0
    if median is None:
        raise RuntimeError(f"could not read wrk's median latency:\n{output}")
    return Load(rps, float(median.group(1)) * _UNITS_MS[median.group(2)], total, errors, "wrk")


def run_python_client(port: int, path: str, headers: dict[str, str], seconds: float, connections: int) -> Load:
    """`connections` threads, each reusing its connection while the server keeps it open."""
    deadline = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    kinds: Counter[str] = Counter()

    def client(index: int) -> None:
        conn: http.client.HTTPConnection | None = None
        while time.monotonic() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[index] += 1
                    kinds[f"HTTP {response.status}"] += 1
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                errors[index] += 1
                kinds[type(exc).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            latencies[index].append((time.perf_counter() - started) * 1000)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 15)
    elapsed = time.monotonic() - started
    flat = [value for per_thread in latencies for value in per_thread]
    if not flat:
        raise RuntimeError(f"no request to {path} succeeded")
    summary = ", ".join(f"{kind} ×{count}" for kind, count in kinds.most_common())
    return Load(len(flat) / elapsed, statistics.median(flat), len(flat), sum(errors), "python client", summary)


# --- the benchmark --------------------------------------------------------------------


def measure(port: int, path: str, headers: dict[str, str], cfg: dict[str, Any]) -> Load:
    load = run_load(port, path, headers, cfg["seconds"], cfg["connections"])
    if load.errors:
        raise RuntimeError(
            f"{load.errors} of {load.requests} requests to {path} failed or were not 200 ({load.error_kinds})"
        )
    return load


def combine(loads: list[Load]) -> Load:
    return Load(
        statistics.median(x.requests_per_second for x in loads),
        statistics.median(x.median_ms for x in loads),
        sum(x.requests for x in loads),
        sum(x.errors for x in loads),
        loads[0].tool,
    )


def main() -> list[dict[str, Any]]:
    from bench.common import ensure_database

    cfg = config()
    ensure_database(cfg["database_url"])
    env = server_env(cfg)
    fixture = prepare(env)
    api_path = f"/api/v1/profiles/{fixture['profile_id']}"
    bare_path = f"/bench/bare-profile/{fixture['profile_id']}"
    auth = {"Authorization": f"Bearer {fixture['token']}"}

    api_runs: list[Load] = []
    bare_runs: list[Load] = []
    with gunicorn(env, cfg["workers"]) as port:
        check_answers(port, api_path, auth)
        check_answers(port, bare_path, {})
        run_load(port, api_path, auth, cfg["warmup"], cfg["connections"])
        run_load(port, bare_path, {}, cfg["warmup"], cfg["connections"])
        # Alternate, so drift on a shared machine hits both sides alike.
        for _ in range(cfg["rounds"]):
            api_runs.append(measure(port, api_path, auth, cfg))
            bare_runs.append(measure(port, bare_path, {}, cfg))

    with gunicorn(server_env(cfg, CONN_MAX_AGE="0"), cfg["workers"]) as port:
        run_load(port, bare_path, {}, cfg["warmup"], cfg["connections"])
        fresh = combine([measure(port, bare_path, {}, cfg) for _ in range(cfg["rounds"])])

    api, bare = combine(api_runs), combine(bare_runs)
    setup = (
        f"gunicorn {cfg['workers']} sync workers, {api.tool} {cfg['connections']} connections, "
        f"{cfg['rounds']}×{cfg['seconds']:g} s alternating, PostgreSQL"
        + (", Redis cache" if "REDIS_URL" in env else "")
    )
    return [
        {
            "name": "API read: GET /api/v1/profiles/{id} vs bare view, throughput",
            "ours": round(api.requests_per_second, 1),
            "baseline": round(bare.requests_per_second, 1),
            "unit": "req/s",
            "ratio": round(api.requests_per_second / bare.requests_per_second, 3),
            "goal": f"≥ {GOAL_THROUGHPUT}",
            "notes": f"Bearer token, developer (PII masked); CONN_MAX_AGE=600; {setup}; "
            f"{api.requests + bare.requests:,} requests, all 200",
        },
        {
            "name": "API read: GET /api/v1/profiles/{id} vs bare view, median latency",
            "ours": round(api.median_ms, 2),
            "baseline": round(bare.median_ms, 2),
            "unit": "ms",
            "ratio": round(api.median_ms / bare.median_ms, 3),
            "goal": f"≤ {GOAL_LATENCY}",
            "notes": f"median of per-request latency under the same load ({cfg['connections']} connections)",
        },
        {
            "name": "Connection reuse: bare view, CONN_MAX_AGE=600 vs 0, throughput",
            "ours": round(bare.requests_per_second, 1),
            "baseline": round(fresh.requests_per_second, 1),
            "unit": "req/s",
            "ratio": round(bare.requests_per_second / fresh.requests_per_second, 3),
            "goal": f"≥ {GOAL_CONN_REUSE}",
            "notes": f"why CONN_MAX_AGE is on: a new PostgreSQL connection per request; median "
            f"{bare.median_ms:.2f} ms with reuse vs {fresh.median_ms:.2f} ms without",
        },
    ]


if __name__ == "__main__":
    for row in main():
        print(json.dumps(row, ensure_ascii=False))
