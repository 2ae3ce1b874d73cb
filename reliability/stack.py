"""The processes a drill runs against, all of them this suite's own: a PostgreSQL cluster
(`pg_createcluster … rel`, port 5442), a Redis server (port 6390), gunicorn with 4 workers,
a Celery worker and Celery beat. Nothing here touches the machine's shared PostgreSQL or
Redis: a drill stops and restarts only what this module started.

    stack = Stack.from_env(); stack.start(); …; stack.stop()

Every setting is an environment variable (RELIABILITY_*), with defaults for a developer
machine and CI (which runs as root and has PostgreSQL 15 and redis-server installed).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "reliability"

# The variables settings.py reads that a drill sets itself; the rest of the environment is
# passed through minus these (tests/processes.py does the same for the test suite).
_SETTINGS_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "REQUIRE_SERVICES",
    "DJANGO_SETTINGS_MODULE",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(*args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, **kwargs)


@dataclass
class Postgres:
    """A PostgreSQL cluster of the drills' own (Debian's pg_createcluster), trusted on 127.0.0.1."""

    version: str = "15"
    cluster: str = "rel"
    port: int = 5442
    database: str = "mk_reliability"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def ensure(self) -> None:
        clusters = _run("pg_lsclusters", "--no-header").stdout
        if not any(line.split()[:2] == [self.version, self.cluster] for line in clusters.splitlines()):
            _run("pg_createcluster", self.version, self.cluster, "-p", str(self.port), "--", "--auth=trust")
            hba = Path(f"/etc/postgresql/{self.version}/{self.cluster}/pg_hba.conf")
            hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n")
        self.start()

    def ctl(self, action: str) -> None:
        _run("pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.cluster, action, check=action != "start")

    def start(self) -> None:
        if not self.ready():
            self.ctl("start")
        self.wait()

    def stop(self) -> None:
        self.ctl("stop")

    def restart(self) -> None:
        self.ctl("restart")

    def ready(self) -> bool:
        return _run("pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port), check=False).returncode == 0

    def wait(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL cluster {self.cluster} did not answer on port {self.port}")
            time.sleep(0.2)

    def recreate_database(self) -> None:
        psql = ("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c")
        _run(*psql, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        _run(*psql, f'CREATE DATABASE "{self.database}"')

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of one statement, as the drill's observer (psycopg, its own connection)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql)
            return list(cursor.fetchall()) if cursor.description else []


@dataclass
class Redis:
    """A redis-server of the drills' own, in the foreground of a child process."""

    port: int = 6390
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        if self.process and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while _run("redis-cli", "-p", str(self.port), "ping", check=False).stdout.strip() != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    def start(self) -> None:
        VAR.mkdir(parents=True, exist_ok=True)
        self.log = VAR / f"{self.name}.log"
        with self.log.open("ab") as out:
            # Its own process group, so that a kill reaches its children (gunicorn's and
            # Celery's workers) and nothing else.
            self.popen = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.popen is not None
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean-up runs, as when a machine dies."""
        self.signal(signal.SIGKILL)
        if self.popen:
            self.popen.wait(10)

    def stop(self, timeout: float = 15) -> None:
        if not self.alive:
            return
        assert self.popen is not None
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class Stack:
    """PostgreSQL, Redis, gunicorn (4 workers), a Celery worker and beat, for the drills."""

    def __init__(self) -> None:
        self.postgres = Postgres(
            cluster=os.environ.get("RELIABILITY_PG_CLUSTER", "rel"),
            port=int(os.environ.get("RELIABILITY_PG_PORT", "5442")),
            database=os.environ.get("RELIABILITY_DATABASE", "mk_reliability"),
        )
        self.redis = Redis(port=int(os.environ.get("RELIABILITY_REDIS_PORT", "6390")))
        self.web_port = int(os.environ.get("RELIABILITY_WEB_PORT", "0")) or free_port()
        self.web_workers = int(os.environ.get("RELIABILITY_WEB_WORKERS", "4"))
        self.secret_key = secrets.token_urlsafe(50)
        self.processes: dict[str, Process] = {}
        self.python = str(Path(sys.executable))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SETTINGS_VARIABLES and not k.startswith("PYTEST")}
        env.update(
            DEBUG="0",
            SECRET_KEY=self.secret_key,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="0",
            MARKETERAPI_DEMO="1",
            DATABASE_URL=self.postgres.url,
            REDIS_URL=self.redis.url(0),
            CELERY_BROKER_URL=self.redis.url(1),
            CELERY_RESULT_BACKEND=self.redis.url(2),
            # The drills' webhook receiver listens on this machine.
            OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32",
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="WARNING",
        )
        env.update(extra)
        return env

    def manage(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run(
            [self.python, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    # --- set-up ----------------------------------------------------------------------

    def prepare(self, profiles: int) -> None:
        """Services up, a fresh database migrated, static files collected, the sandbox loaded
        with `profiles` synthetic profiles and the demo users made."""
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.postgres.ensure()
        self.postgres.recreate_database()
        self.redis.start()
        _run("redis-cli", "-p", str(self.redis.port), "flushall")
        self.manage("migrate", "--noinput")
        manifest = ROOT / "staticfiles" / "staticfiles.json"
        sources = [p for pattern in ("*/static/**/*", "marketerapi/static/**/*") for p in ROOT.glob(pattern)]
        if not manifest.is_file() or any(p.stat().st_mtime > manifest.stat().st_mtime for p in sources):
            self.manage("collectstatic", "--noinput", "--verbosity", "0")
        self.manage("sandbox_reset", "--environment", "sandbox", "--profiles", str(profiles), "--seed", "42")

    def seed_users(self, usernames: list[str], tokens_each: int) -> dict[str, list[str]]:
        """The demo users (seed_demo) and `tokens_each` sandbox tokens for each of `usernames`,
        in one process (a Django start costs seconds here)."""
        code = (
            "import io, json\n"
            "from django.core.management import call_command\n"
            "call_command('seed_demo', stdout=io.StringIO())\n"
            "out = {}\n"
            f"for name in {usernames!r}:\n"
            f"    for _ in range({tokens_each}):\n"
            "        buffer = io.StringIO()\n"
            "        call_command('issue_token', name, environment='sandbox', quiet=True, stdout=buffer)\n"
            "        out.setdefault(name, []).append(buffer.getvalue().strip())\n"
            "print('TOKENS ' + json.dumps(out))\n"
        )
        output = self.manage("shell", "-c", code)
        line = next(line for line in output.splitlines() if line.startswith("TOKENS "))
        return dict(json.loads(line[len("TOKENS ") :]))

    # --- processes -------------------------------------------------------------------

    def start_web(self) -> None:
        self.processes["web"] = Process(
            "gunicorn",
            [
                self.python,
                "-m",
                "gunicorn",
                "marketerapi.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                str(self.web_workers),
                "--timeout",
                "60",
            ],
            self.env(),
        )
        self.processes["web"].start()
        self.wait_http("/healthz")

    def start_worker(self) -> None:
        self.processes["worker"] = Process(
            "celery-worker",
            [
                self.python,
                "-m",
                "celery",
                "-A",
                "marketerapi",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--hostname",
                f"drill-{secrets.token_hex(3)}@%h",
            ],
            self.env(),
        )
        log = VAR / "celery-worker.log"
        offset = log.stat().st_size if log.is_file() else 0
        self.processes["worker"].start()
        # Celery prints "… ready." when it consumes from the broker.
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text(errors="replace")[offset:]:
            if time.monotonic() > deadline or not self.processes["worker"].alive:
                raise RuntimeError(
                    f"the Celery worker did not start:\n{log.read_text(errors='replace')[offset:][-2000:]}"
                )
            time.sleep(0.25)

    def start_beat(self) -> None:
        VAR.mkdir(parents=True, exist_ok=True)
        self.processes["beat"] = Process(
            "celery-beat",
            [
                self.python,
                "-m",
                "celery",
                "-A",
                "marketerapi",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(VAR / "celerybeat-schedule"),
            ],
            self.env(),
        )
        self.processes["beat"].start()

    def start(self) -> None:
        self.start_web()
        self.start_worker()
        self.start_beat()

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        self.redis.stop()

    def wait_http(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                log = self.processes["web"].log.read_text()[-2000:] if "web" in self.processes else ""
                raise RuntimeError(f"{self.base_url}{path} did not answer within {timeout:.0f} s\n{log}")
            time.sleep(0.25)


def dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
