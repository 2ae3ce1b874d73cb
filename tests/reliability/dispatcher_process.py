"""A dispatcher process for the crash tests: runs the relay or the sender and stops dead at
a hook point (prints `HOLDING <stage>` and waits there), so the test can SIGKILL it:

    relay-after-claim     events claimed (rows locked, transaction open), fan-out not done
    deliver-after-claim   deliveries claimed and leased (committed), nothing sent
    deliver-after-send    every request sent and answered, nothing recorded

    DATABASE_URL=… DJANGO_SETTINGS_MODULE=marketerapi.settings_test \
        python -m tests.reliability.dispatcher_process deliver-after-send
"""

from __future__ import annotations

import sys
import time
from typing import Any


def hold(stage: str) -> None:
    print(f"HOLDING {stage}", flush=True)
    time.sleep(600)
    raise SystemExit("not killed in time")


def main(stage: str) -> None:
    import django

    django.setup()
    from integrations.outbox import relay
    from integrations.webhooks import delivery, sending

    # No kicks from this process: the test drives every step.
    relay.kick_relay = lambda: None
    delivery.kick_deliveries = lambda: None

    if stage == "relay-after-claim":
        original = relay._fan_out

        def fan_out(events: Any) -> int:
            hold(stage)
            return original(events)

        relay._fan_out = fan_out
        relay.relay_outbox()
    elif stage == "deliver-after-claim":
        sending.send = lambda *args, **kwargs: hold(stage)
        delivery.deliver_webhooks()
    elif stage == "deliver-after-send":
        delivery._record = lambda results, now: hold(stage)
        delivery.deliver_webhooks()
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    print("DONE without reaching the hook", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
