"""The integrations app. `ready()` wires up everything a process needs, whatever it happened
to import: the relay kick after events commit, the adapters, the dead-letter kinds and
the worker heartbeats."""

from typing import Any

from django.apps import AppConfig


def _kick_relay(sender: Any, **kwargs: Any) -> None:
    from integrations.outbox import relay

    relay.kick_relay()


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from governance.outbox import events_committed
        from integrations import adapters  # noqa: F401  (each adapter registers itself)
        from integrations.destinations import services as destinations
        from integrations.status import heartbeats
        from integrations.webhooks import dead_letters
        from integrations.webhooks import services as webhooks

        # Events written by any app's service are relayed once their transaction commits.
        events_committed.connect(_kick_relay, dispatch_uid="integrations.kick_relay")
        # How each kind of dead letter is replayed and discarded (API, admin, any worker).
        dead_letters.register_dead_letter_kind(dead_letters.WEBHOOK_DELIVERY, webhooks.DELIVERY_DEAD_LETTERS)
        dead_letters.register_dead_letter_kind(dead_letters.OUTBOX_DISPATCH, webhooks.DISPATCH_DEAD_LETTERS)
        dead_letters.register_dead_letter_kind(dead_letters.DESTINATION_PUSH, destinations.PUSH_DEAD_LETTERS)
        # A Celery worker writes its heartbeat when it starts, while it runs, and forgets it on shutdown.
        heartbeats.connect_worker_signals()
        # Our gauges on /metrics, beside django-prometheus's (integrations/prometheus.py).
        from integrations import prometheus

        prometheus.register()
