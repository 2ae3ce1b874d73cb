"""SIGKILL a real Celery worker in the middle of an export (PostgreSQL + Redis): nothing is
offered meanwhile — no file under its final name, the export `running`, no download — and
when the work is delivered again (the broker's redelivery, or the exports sweep) a fresh
worker takes the job over and finishes the whole file; a job whose workers keep dying
fails cleanly with the reason, never with a partial file.

Skips without PostgreSQL and a broker; fails with REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from audiences.exports import runner
from audiences.exports.services import export_create
from audiences.models import Export, ExportState, Membership, Profile
from governance.actors import Actor
from governance.models import Environment
from integrations.models import Job
from tests.factories import AudienceFactory, UserFactory
from tests.processes import ROOT, clean_env
from tests.reliability import test_dispatch_crash
from tests.reliability.fixtures import database_url
from tests.test_celery_worker import broker_url

pytestmark = [pytest.mark.services, pytest.mark.slow]

postgres = test_dispatch_crash.postgres
ROWS = 3000

# A worker on its own queue. With SLOW set, it writes 100 rows per batch and sleeps after
# each: the export takes seconds, so the test can kill it in the middle.
WORKER = """
import os, sys, time
import django
django.setup()
from marketerapi.celery import app
import audiences.tasks  # noqa: F401
if os.environ.get("SLOW_EXPORT"):
    from audiences.exports import columns, runner
    runner.BATCH = 100
    write_rows = columns.Writer.write_rows
    def slow(self, rows):
        write_rows(self, rows)
        time.sleep(0.1)
    columns.Writer.write_rows = slow
app.worker_main(["worker", "--pool", "solo", "--queues", sys.argv[1], "--hostname", sys.argv[1] + "@%h",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"])
"""


@pytest.fixture
def exports_root(tmp_path, settings) -> Path:
    root = tmp_path / "exports"
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(root)}},
    }
    return root


def start_worker(queue: str, root: Path, *, slow: bool) -> subprocess.Popen[str]:
    env = clean_env(
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE="marketerapi.settings_test",
        SECRET_KEY=settings.SECRET_KEY,
        CELERY_BROKER_URL=broker_url(),
        EXPORTS_ROOT=str(root),
    )
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    if slow:
        env["SLOW_EXPORT"] = "1"
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, queue],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def wait_for(condition, seconds: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def final_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".partial" not in p.parts]


def an_export(environment: Environment) -> Export:
    analyst = UserFactory(username=f"exp-{uuid.uuid4().hex[:6]}", groups=["analyst", "growth"])
    Profile.objects.bulk_create(
        [Profile(environment=environment, external_id=f"k-{n:05d}", email=f"k{n}@example.test") for n in range(ROWS)]
    )
    audience = AudienceFactory(environment=environment, published=True)
    Membership.objects.bulk_create(
        [
            Membership(version_id=audience.live_version_id, profile=p)
            for p in Profile.objects.filter(environment=environment)
        ]
    )
    actor = Actor(user=analyst, environment=environment)
    started = export_create(actor=actor, audience=audience, format="csv", fields=["external_id", "email"])
    assert started.result is not None
    return started.result.export


def test_a_worker_killed_mid_export_offers_nothing_and_a_fresh_worker_finishes_it(postgres, sandbox, exports_root):
    from audiences.tasks import export_task

    export = an_export(sandbox)
    queue = f"test-export-{uuid.uuid4().hex[:12]}"
    first = start_worker(queue, exports_root, slow=True)
    try:
        export_task.apply_async(args=[export.job_id], queue=queue)
        wait_for(lambda: (Job.objects.get(pk=export.job_id).progress or {}).get("done", 0) >= 500, what="progress")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop(first)

    # killed mid-write: nothing offered
    export.refresh_from_db()
    assert export.state == ExportState.RUNNING and export.file_name == "" and export.rows is None
    assert final_files(exports_root) == []
    assert list((exports_root / ".partial").glob("*.part")), "the killed worker was writing a temporary file"
    # the sweep sees the worker gone (its job lock was released with its connection)
    assert runner.exports_recover() == [export.job_id]

    second = start_worker(queue, exports_root, slow=False)
    try:
        # What the sweep sends (beat, or the new worker's own sweep as it starts; both on
        # the default queue, which this test's worker does not read).
        export_task.apply_async(args=[export.job_id], queue=queue)
        wait_for(lambda: Export.objects.get(pk=export.pk).state == ExportState.READY, what="the export to finish")
    finally:
        stop(second)

    export.refresh_from_db()
    job = Job.objects.get(pk=export.job_id)
    assert job.state == "succeeded" and job.attempts == 2
    assert export.rows == ROWS
    files = final_files(exports_root)
    assert [f.name for f in files] == [f"export-{export.pk}.csv"]
    rows = list(csv.reader(io.StringIO(files[0].read_text())))
    assert rows[0] == ["external_id", "email"] and len(rows) == ROWS + 1
    assert len({row[0] for row in rows[1:]}) == ROWS, "every member exactly once"


def test_an_export_whose_workers_keep_dying_fails_cleanly(postgres, sandbox, exports_root):
    export = an_export(sandbox)
    # Taken over MAX_ATTEMPTS times already; its last worker is gone (no session holds its lock).
    Job.objects.filter(pk=export.job_id).update(
        state="running", attempts=runner.MAX_ATTEMPTS, heartbeat_at=timezone.now() - timedelta(minutes=1)
    )

    finished = runner.export_job_run(export.job_id)

    assert finished is not None and finished.state == "failed"
    assert finished.errors[0]["code"] == "worker_lost" and finished.errors[0]["hint"]
    export.refresh_from_db()
    assert export.state == ExportState.FAILED and export.file_name == ""
    assert final_files(exports_root) == []
