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

        # Events written by any app's service are relayed once their transaction commits.
        events_committed.connect(_kick_relay, dispatch_uid="integrations.kick_relay")
