"""Thin Celery wrappers over the integrations services, and their periodic sweeps.

The relay and the deliveries are kicked after the commits that create work
(integrations.outbox.emit, integrations.relay) and swept by Celery beat, so a kick lost
to a crash or a broker outage only costs latency. Every task is idempotent (the claims
are conditional and leased in the database) and acknowledged late: a worker that dies
mid-task has its message redelivered, and the database's attempt counters bound how
often the same work is tried.
"""

from __future__ import annotations

from typing import Any

from marketerapi.celery import app

# Sweep intervals, in seconds. A kicked run usually finds nothing left; the sweeps pick up
# lost kicks and deliveries whose backoff has run out.
RELAY_SWEEP_SECONDS = 10.0
DELIVERY_SWEEP_SECONDS = 5.0
# One run stops after this long so a backlog is shared between workers and beat ticks.
TIME_BUDGET_SECONDS = 50.0

_COMMON: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@app.task(name="integrations.relay_outbox", **_COMMON)
def relay_outbox_task() -> dict[str, int]:
    """Fan undispatched outbox events out to webhook deliveries, in id order."""
    from integrations import relay

    return relay.relay_outbox(time_budget=TIME_BUDGET_SECONDS).as_dict()


@app.task(name="integrations.deliver_webhooks", **_COMMON)
def deliver_webhooks_task() -> dict[str, Any]:
    """Send the webhook deliveries that are due; retries are scheduled in the database."""
    from integrations import relay

    return relay.deliver_webhooks(time_budget=TIME_BUDGET_SECONDS).as_dict()


def register_periodic_tasks(sender: Any, **kwargs: Any) -> None:
    # `expires`: a tick that waited longer than its interval in the queue is dropped; the
    # next one does the same work.
    sender.add_periodic_task(
        RELAY_SWEEP_SECONDS,
        relay_outbox_task.s(),
        name="integrations.relay_outbox sweep",
        expires=RELAY_SWEEP_SECONDS,
    )
    sender.add_periodic_task(
        DELIVERY_SWEEP_SECONDS,
        deliver_webhooks_task.s(),
        name="integrations.deliver_webhooks sweep",
        expires=DELIVERY_SWEEP_SECONDS,
    )


app.on_after_finalize.connect(register_periodic_tasks, weak=False)
if app.finalized:
    # Imported after the app was finalized (e.g. by Django before a worker started): the
    # signal has already fired.
    register_periodic_tasks(app)

from integrations.destination_tasks import *  # noqa: E402, F403
