"""Benchmark: the outbox dispatcher, and what an outbox row costs a service call.

1. **Throughput.** 10,000 domain events already committed to the outbox are relayed
   (claimed in batches, fanned out to one webhook subscription) and delivered as signed
   POSTs to a local receiver (a separate process on 127.0.0.1, HTTP/1.1 keep-alive), every
   result recorded in the delivery log: what one worker process does, timed from the first
   claim to the last recorded delivery.
   baseline: the same 10,000 signed bodies POSTed to the same receiver with the same
   HTTP client and thread pool, and no database at all: the ceiling the dispatcher's
   bookkeeping (claims, leases, the log) is measured against.

2. **Cost of an outbox row.** `consent_sync` of one row (policy, row lock, consent and ledger
   writes, audit event, commit) with its `consent.updated` event written to the outbox and
   the relay kicked after commit (published to the broker), against the same call with the
   outbox write switched off. Calls alternate between the two, so drift hits both alike.

Database: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/marketerapi_bench).
It works in an environment of its own (`bench-outbox`), so other data in that database is left alone.
The measurement runs in a child process with its own settings (bench.settings_bench), so
it never mixes with the caller's. The broker for the kick is Redis (BENCH_BROKER_URL,
default redis://127.0.0.1:6379/6) when it answers; its queue is purged afterwards.

    python bench/bench_outbox.py            # prints the rows
    BENCH_OUTBOX_EVENTS=2000 python bench/bench_outbox.py
    main() -> list[dict]                    # for bench/run.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench.common` importable
    sys.path.insert(0, str(ROOT))

MARKER = "BENCH-ROWS:"
DEFAULT_BROKER = "redis://127.0.0.1:6379/6"
EVENTS = int(os.environ.get("BENCH_OUTBOX_EVENTS", "10000"))
CALLS = int(os.environ.get("BENCH_OUTBOX_CALLS", "400"))
GOAL_THROUGHPUT = 0.25  # the dispatcher keeps at least a quarter of raw HTTP's events per second
GOAL_EMIT = 1.25  # the outbox row and the kick add at most 25 % to a small service call


# --- the receiver (a process of its own) ---------------------------------------------


def serve_receiver() -> None:
    """A minimal webhook receiver: 204 to every POST; prints its port, runs until killed."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- the measurement (child process, Django set up on the bench database) -------------


def _broker_answers(url: str) -> bool:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        return True
    except Exception:
        return False


def _clean(environment: Any) -> None:
    """Remove this benchmark's rows (its own environment only: other benchmarks share the database)."""
    from django.db import connection

    env = environment.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM integrations_deliveryattempt WHERE delivery_id IN (SELECT d.id FROM "
            "integrations_webhookdelivery d JOIN integrations_webhooksubscription s ON s.id = d.subscription_id "
            "WHERE s.environment_id = %s)",
            [env],
        )
        cursor.execute(
            "DELETE FROM integrations_webhookdelivery WHERE subscription_id IN "
            "(SELECT id FROM integrations_webhooksubscription WHERE environment_id = %s)",
            [env],
        )
        cursor.execute("DELETE FROM integrations_deadletter WHERE environment_id = %s", [env])
        cursor.execute("DELETE FROM integrations_outboxevent WHERE environment_id = %s", [env])
    from integrations.models import WebhookSubscription

    WebhookSubscription.objects.filter(environment=environment).delete()


def _throughput(environment: Any, url: str, events: int) -> dict[str, Any]:

    from integrations.outbox import relay
    from integrations.webhooks import delivery

    # This process drives relay and sender itself; kicks would only duplicate the work.
    kicks = relay.kick_relay, delivery.kick_deliveries
    relay.kick_relay = delivery.kick_deliveries = lambda: None
    try:
        return _drive(environment, url, events)
    finally:
        relay.kick_relay, delivery.kick_deliveries = kicks


def _drive(environment: Any, url: str, events: int) -> dict[str, Any]:
    from django.db import transaction

    from governance import outbox
    from governance.actors import Actor
    from integrations import egress
    from integrations.models import DeliveryState, WebhookDelivery
    from integrations.outbox import relay
    from integrations.webhooks import delivery, sending, signing
    from integrations.webhooks import services as webhooks

    secret = "whsec_bench-outbox-secret-0123456789"  # noqa: S105  (a throwaway bench secret)
    webhooks.webhook_create(
        actor=Actor.system(environment),
        url=url,
        event_types=["consent.updated"],
        secret=secret,
        description="bench_outbox",
    )
    for start in range(0, events, 2000):
        with transaction.atomic():
            outbox.emit_many(
                "consent.updated",
                environment,
                (
                    ("audiences.profile", i, {"external_id": f"bench-{i:06d}", "changes": [{"channel": "email"}]})
                    for i in range(start, min(start + 2000, events))
                ),
            )

    started = time.perf_counter()
    relay_seconds = 0.0
    relayed, delivered = relay.RelayOutcome(), delivery.DeliveryOutcome()
    while True:  # as a worker does: relay what is new, send what is due, until nothing is left
        t0 = time.perf_counter()
        r = relay.relay_outbox()
        relay_seconds += time.perf_counter() - t0
        d = delivery.deliver_webhooks()
        relayed.add(r)
        delivered.add(d)
        if not r.events and not d.claimed:
            break
    ours_seconds = time.perf_counter() - started
    succeeded = WebhookDelivery.objects.filter(state=DeliveryState.SUCCEEDED).count()
    if succeeded != events:
        raise RuntimeError(f"only {succeeded:,} of {events:,} deliveries succeeded: {delivered.as_dict()}")

    # Baseline: the same signed POSTs, same client settings and pool, no database.
    bodies = [
        json.dumps({"id": f"evt_{i:032x}", "type": "consent.updated", "data": {"n": i}}, separators=(",", ":")).encode()
        for i in range(events)
    ]
    from concurrent.futures import ThreadPoolExecutor

    client = sending.client(egress.SANDBOX)

    def post(body: bytes) -> int:
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            signing.SIGNATURE_HEADER: signing.signature_header(secret, ts, body),
        }
        return client.post(url, content=body, headers=headers).status_code

    started = time.perf_counter()
    codes: list[int] = []
    with ThreadPoolExecutor(max_workers=sending.concurrency()) as pool:
        for chunk in range(0, events, delivery.DELIVERY_BATCH):
            codes += list(pool.map(post, bodies[chunk : chunk + delivery.DELIVERY_BATCH]))
    baseline_seconds = time.perf_counter() - started
    client.close()
    if any(code != 204 for code in codes):
        raise RuntimeError("the receiver refused some baseline requests")
    return {
        "ours": events / ours_seconds,
        "baseline": events / baseline_seconds,
        "relay_share": relay_seconds / ours_seconds,
        "batches": delivered.batches,
        "relay_batches": relayed.batches,
    }


def _emit_cost(environment: Any, calls: int) -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    from audiences.models import Profile
    from audiences.profiles import services
    from governance import outbox
    from governance.actors import Actor

    profile, _ = Profile.objects.get_or_create(environment=environment, external_id="bench-outbox-emit")
    actor = Actor.system(environment)
    real_emit_many = outbox.emit_many
    from audiences.models import Consent

    # Each call must be newer than the last one stored (also by an earlier run), or it is stale.
    stored = Consent.objects.filter(profile=profile).order_by("-captured_at").values_list("captured_at", flat=True)
    clock = [max([datetime.now(UTC), *stored[:1]])]

    def call() -> float:
        clock[0] += timedelta(seconds=1)
        status = "granted" if int(clock[0].timestamp()) % 2 else "denied"
        update = {
            "external_id": profile.external_id,
            "channel": "email",
            "status": status,
            "source": "bench",
            "captured_at": clock[0],
        }
        started = time.perf_counter()
        outcome = services.consent_sync(actor=actor, updates=[update])
        elapsed = time.perf_counter() - started
        assert outcome.updated == 1
        return elapsed

    def without_outbox(event_type: str, env: Any, items: Any) -> int:
        return len(list(items))

    from integrations.outbox import relay

    real_kick = relay.kick_relay
    with_emit: list[float] = []
    row_only: list[float] = []
    without_emit: list[float] = []
    for _ in range(20):  # warm-up: connections, caches, the broker connection
        call()
    try:
        for _ in range(calls):
            services.outbox.emit_many = real_emit_many
            with_emit.append(call())
            relay.kick_relay = lambda: None
            row_only.append(call())
            relay.kick_relay = real_kick
            services.outbox.emit_many = without_outbox
            without_emit.append(call())
    finally:
        services.outbox.emit_many = real_emit_many
        relay.kick_relay = real_kick
    return {
        "ours": statistics.median(with_emit) * 1000,
        "row_only": statistics.median(row_only) * 1000,
        "baseline": statistics.median(without_emit) * 1000,
    }


def measure(receiver_url: str, events: int, calls: int) -> list[dict[str, Any]]:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from governance.models import Environment

    call_command("migrate", verbosity=0, interactive=False)
    environment, _ = Environment.objects.get_or_create(
        slug="bench-outbox",
        defaults={"name": "Benchmark: outbox", "data_kind": "synthetic", "purpose": "bench/bench_outbox.py"},
    )
    _clean(environment)
    broker = settings.CELERY_BROKER_URL
    try:
        flow = _throughput(environment, receiver_url, events)
        _clean(environment)
        # The emit-cost part kicks the relay for real: a publish to the broker after commit.
        cost = _emit_cost(environment, calls)
    finally:
        _clean(environment)
        if broker:
            import redis

            redis.Redis.from_url(broker).delete("celery")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    throughput_ratio = flow["ours"] / flow["baseline"]
    emit_ratio = cost["ours"] / cost["baseline"]
    share = (cost["ours"] - cost["baseline"]) / cost["ours"]
    row_share = (cost["row_only"] - cost["baseline"]) / cost["ours"]
    from integrations.outbox import relay
    from integrations.webhooks import delivery, sending

    return [
        {
            "name": f"Outbox → webhook: {events:,} events relayed, signed, POSTed, logged",
            "ours": round(flow["ours"], 1),
            "baseline": round(flow["baseline"], 1),
            "unit": "events/s",
            "ratio": round(throughput_ratio, 3),
            "goal": f"≥ {GOAL_THROUGHPUT}",
            "notes": (
                f"one worker process: relay batches of {relay.RELAY_BATCH}, delivery batches of "
                f"{delivery.DELIVERY_BATCH} over {sending.concurrency()} threads, keep-alive; relay "
                f"{flow['relay_share']:.0%} of the time; baseline = the same signed POSTs with no database; "
                f"receiver in its own process on 127.0.0.1; PostgreSQL {postgres}"
            ),
        },
        {
            "name": "Outbox row in a service call: consent_sync of 1 row with vs without emit",
            "ours": round(cost["ours"], 3),
            "baseline": round(cost["baseline"], 3),
            "unit": "ms (median)",
            "ratio": round(emit_ratio, 3),
            "goal": f"≤ {GOAL_EMIT}",
            "notes": (
                f"the outbox row {'and the relay kick (Redis publish after commit) ' if broker else ''}"
                f"are {share:.0%} of the call; the row alone {row_share:.0%} ({cost['row_only']:.3f} ms with the kick "
                f"off); {calls} calls each, alternating; system actor, audit event included"
                + ("" if broker else "; no broker answered, so the kick was not measured")
            ),
        },
    ]


def child_main(argv: list[str]) -> None:
    if argv and argv[0] == "--receiver":
        serve_receiver()
        return
    url, events, calls = argv[1], int(argv[2]), int(argv[3])
    rows = measure(url, events, calls)
    print(MARKER + json.dumps(rows), flush=True)


# --- bench/run.py entry point -------------------------------------------------------------


def main() -> list[dict[str, Any]]:
    from bench.common import database_url, ensure_database

    url = database_url()
    ensure_database(url)
    broker = os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_URL"))}
    env.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="bench.settings_bench",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
    )
    if _broker_answers(broker):
        env["CELERY_BROKER_URL"] = broker
    receiver = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--receiver"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        result = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--measure",
                f"http://127.0.0.1:{port}/hook",
                str(EVENTS),
                str(CALLS),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    for line in result.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise RuntimeError(f"bench_outbox failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        child_main(sys.argv[1:])
    else:
        for row in main():
            print(json.dumps(row, ensure_ascii=False))
