"""The dead-letter kinds registry: how each kind of work that failed for good is put back in
line (replay) or given up (discard).

Dead letters are generic: webhook deliveries (`webhook_delivery`), outbox events whose
fan-out kept failing (`outbox_dispatch`) and destination pushes (`destination_push`).
Each kind's handlers live with its topic; integrations/apps.py registers all of them in
ready(), so every process (web, worker, shell) knows every kind whatever it imported.
The services that resolve a dead letter are in integrations/webhooks/services.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from integrations.models import DeadLetter

WEBHOOK_DELIVERY = "webhook_delivery"
OUTBOX_DISPATCH = "outbox_dispatch"
DESTINATION_PUSH = "destination_push"


@dataclass(frozen=True)
class DeadLetterKind:
    """How one kind of work is put back in line (replay) or given up for good (discard).

    Both run inside the service's transaction with the dead letter locked, return a
    sentence for the caller, and raise a Conflict when the work can no longer be replayed.
    `after_commit` runs once the transaction commits (e.g. kick a worker).
    """

    replay: Callable[[DeadLetter, datetime], str]
    discard: Callable[[DeadLetter, datetime], str] | None = None
    after_commit: Callable[[], None] | None = None


DEAD_LETTER_KINDS: dict[str, DeadLetterKind] = {}


def register_dead_letter_kind(kind: str, handler: DeadLetterKind) -> None:
    """Called from integrations/apps.py for every kind; registering again replaces."""
    DEAD_LETTER_KINDS[kind] = handler


def dead_letter_kind(kind: str) -> DeadLetterKind | None:
    return DEAD_LETTER_KINDS.get(kind)
