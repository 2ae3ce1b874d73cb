"""A real Celery worker (PostgreSQL + Redis) runs the relay task, which kicks the delivery task
after its commit; the event reaches the receiver signed, and the database shows it delivered.

Needs PostgreSQL (the worker is another process on the test database) and a broker; skips
without them, fails with REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings

from integrations.models import DeliveryState, WebhookDelivery
from tests.factories import WebhookSubscriptionFactory
from tests.processes import ROOT, clean_env
from tests.reliability import fixtures, test_dispatch_crash
from tests.reliability.fixtures import SECRET, database_url, emit
from tests.reliability.receivers import Answer
from tests.test_celery_worker import broker_url

pytestmark = [pytest.mark.services, pytest.mark.slow]

# Shared fixtures (tests/reliability/fixtures.py), bound here so pytest finds them.
no_kicks = fixtures.no_kicks
receiver = fixtures.receiver
postgres = test_dispatch_crash.postgres

WORKER = """
import sys
import django
django.setup()
from marketerapi.celery import app
import integrations.tasks  # noqa: F401
app.conf.task_default_queue = sys.argv[1]
app.worker_main(["worker", "--pool", "solo", "--queues", sys.argv[1], "--hostname", sys.argv[1] + "@%h",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"])
"""


@pytest.fixture
def worker(postgres):
    url = broker_url()
    queue = f"test-relay-{uuid.uuid4().hex[:12]}"
    env = clean_env(
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE="marketerapi.settings_test",
        SECRET_KEY=settings.SECRET_KEY,
        CELERY_BROKER_URL=url,
    )
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, queue],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield queue
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if process.returncode not in (0, -15):
            print(output)


def test_a_worker_relays_and_delivers_through_the_broker(worker, sandbox, receiver, no_kicks):
    from integrations.tasks import relay_outbox_task
    from marketerapi.celery import app

    assert not app.conf.task_always_eager
    hook = receiver(default=Answer(200))
    WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    event = emit(sandbox)  # committed (transactional test); this process's kick is recorded, not sent
    assert no_kicks == ["relay"]

    # the kick, as emit's on_commit hook sends it, to the worker's queue
    relay_outbox_task.apply_async(queue=worker)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not hook.received:
        time.sleep(0.2)
    assert hook.event_ids() == [event.public_id], "the worker did not deliver the event within 60 s"
    from integrations.webhooks import signing

    got = hook.received[0]
    assert signing.verify_signature(got.headers["marketerapi-signature"], got.body, SECRET)
    while time.monotonic() < deadline and not WebhookDelivery.objects.filter(state=DeliveryState.SUCCEEDED).exists():
        time.sleep(0.2)
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.SUCCEEDED and delivery.attempts == 1
