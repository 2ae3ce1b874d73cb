"""A real Celery worker process answers `marketerapi.ping` through the broker.

Needs CELERY_BROKER_URL (Redis in CI); skips without one, fails with REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings

from tests.conftest import require_service
from tests.processes import ROOT

pytestmark = [pytest.mark.services, pytest.mark.slow]


def broker_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "") or settings.CELERY_BROKER_URL
    if not url or url.startswith("memory://"):
        require_service(
            "Celery broker", "CELERY_BROKER_URL is not set to a real broker (e.g. redis://127.0.0.1:6379/1)"
        )
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        require_service("Celery broker", f"{url} does not answer: {exc}")
    return url


@pytest.fixture
def worker():
    """A `celery worker --pool solo` process on a queue of its own, stopped afterwards."""
    url = broker_url()
    # A queue no other worker consumes, so a worker left by `make run` or another suite on
    # the same broker cannot answer for this one.
    queue = f"test-ping-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "CELERY_BROKER_URL": url, "DJANGO_SETTINGS_MODULE": "marketerapi.settings_test"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "marketerapi",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--hostname",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield queue, process
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if process.returncode not in (0, -15):
            print(output)


def test_a_worker_process_answers_ping_through_the_broker(worker):
    from marketerapi.celery import app, ping

    queue, process = worker
    assert not app.conf.task_always_eager, "the test process must send through the broker, not run in-process"

    # when a task is sent to the worker's queue
    started = time.monotonic()
    result = ping.apply_async(args=["hello from the test"], queue=queue)

    # then the worker process runs it and the answer comes back through the result backend
    try:
        answer = result.get(timeout=60)
    except Exception:
        process.terminate()
        output = process.communicate(timeout=20)[0]
        pytest.fail(f"the worker did not answer within 60 s; its output:\n{output}")
    assert answer == "hello from the test"
    assert process.poll() is None, "the worker process should still be running"
    assert time.monotonic() - started < 60
