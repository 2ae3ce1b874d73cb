"""What every benchmark needs: the bench database and a description of the machine."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marketerapi_bench"
# A child process prints its rows on one line starting with this.
MARKER = "BENCH-ROWS:"


def database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)


def ensure_database(url: str) -> str:
    """Create the PostgreSQL database of `url` when missing; return the server's version.

    Raises RuntimeError with what to do when PostgreSQL does not answer.
    """
    import psycopg
    from psycopg import sql

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin_url = urlunparse(parts._replace(path="/postgres", scheme="postgresql"))
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL at {parts.hostname}:{parts.port or 5432} does not answer ({exc}). The benchmarks run on "
            "PostgreSQL: start it (pg_ctlcluster --skip-systemctl-redirect 15 main start) or set BENCH_DATABASE_URL."
        ) from exc
    return version


def run_child(script: str, env: dict[str, str], *, verbose: bool = False, timeout: int = 1800) -> list[dict[str, Any]]:
    """Run `script --child` (its own Django settings in `env`) and return the rows it
    prints after MARKER; on failure, raise with the tails of its output. `verbose` also
    passes on what the child wrote to stderr (e.g. query plans)."""
    name = Path(script).stem
    done = subprocess.run(
        [sys.executable, str(Path(script).resolve()), "--child"],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if verbose or done.returncode:
        sys.stderr.write(done.stderr if verbose else done.stderr[-4000:])
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            return list(json.loads(line[len(MARKER) :]))
    raise RuntimeError(f"{name} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def synthetic_environment(slug: str, *, name: str, purpose: str, profiles: int, seed: int) -> tuple[Any, str]:
    """(an environment of synthetic data of its own, a note on its profiles): loaded with
    `sandbox_reset` when it holds fewer than `profiles`, else reused as it is. In a child."""
    from audiences.models import Profile
    from governance.actors import Actor
    from governance.models import DataKind, Door, Environment
    from sandbox.services import sandbox_reset

    environment, _ = Environment.objects.get_or_create(
        slug=slug,
        defaults={"name": name, "purpose": purpose, "data_kind": DataKind.SYNTHETIC, "change_windows": []},
    )
    loaded = Profile.objects.filter(environment=environment).count()
    if loaded >= profiles:
        return environment, f"reused {loaded:,} profiles"
    started = time.perf_counter()
    sandbox_reset(actor=Actor.system(environment, door=Door.CLI), environment=environment, profiles=profiles, seed=seed)
    loaded = Profile.objects.filter(environment=environment).count()
    return environment, f"loaded {loaded:,} profiles with sandbox_reset in {time.perf_counter() - started:.0f} s"


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit}{' + uncommitted changes' if dirty else ''}"


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return {
        "load": load,
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }
