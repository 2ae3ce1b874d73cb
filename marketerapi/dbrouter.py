"""Read replica routing: with DATABASE_REPLICA_URL set, the reads that may lag a little and
load the database most — audience previews (and, once they come, exports) — go to the
replica; everything else, and every write, stays on the primary.

A read opts in with `with replica_reads(): …` around its queries; the router sends the
reads inside it to REPLICA_DATABASE (the `replica` alias) when one is configured.
Migrations run on the primary only.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings

_on_replica: contextvars.ContextVar[bool] = contextvars.ContextVar("replica_reads", default=False)


@contextmanager
def replica_reads() -> Iterator[None]:
    """Send the reads inside to the replica, when there is one."""
    token = _on_replica.set(True)
    try:
        yield
    finally:
        _on_replica.reset(token)


class ReplicaRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        alias = getattr(settings, "REPLICA_DATABASE", None)
        if alias and _on_replica.get():
            return alias
        return None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        # The replica holds the primary's rows: an object read there may be linked to one from the primary.
        return True

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == "default"
