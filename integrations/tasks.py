"""Thin Celery wrappers over the integrations services, and their periodic sweeps.

The relay and the deliveries are kicked after the commits that create work
(governance.outbox.emit, integrations/outbox/relay.py) and swept by Celery beat, so a kick lost
to a crash or a broker outage only costs latency. Every task is idempotent (the claims
are conditional and leased in the database) and acknowledged late: a worker that dies
mid-task has its message redelivered, and the database's attempt counters bound how
often the same work is tried.
"""

from __future__ import annotations

from typing import Any

from marketerapi.celery import TASK_DEFAULTS, app

# One run stops after this long so a backlog is shared between workers and beat ticks.
TIME_BUDGET_SECONDS = 50.0


@app.task(name="integrations.relay_outbox", **TASK_DEFAULTS)
def relay_outbox_task() -> dict[str, int]:
    """Fan undispatched outbox events out to webhook deliveries, in id order."""
    from integrations.outbox import relay

    return relay.relay_outbox(time_budget=TIME_BUDGET_SECONDS).as_dict()


@app.task(name="integrations.deliver_webhooks", **TASK_DEFAULTS)
def deliver_webhooks_task() -> dict[str, Any]:
    """Send the webhook deliveries that are due; retries are scheduled in the database."""
    from integrations.webhooks import delivery

    return delivery.deliver_webhooks(time_budget=TIME_BUDGET_SECONDS).as_dict()


from integrations.destination_tasks import *  # noqa: E402, F403
