"""Helpers for the ingestion tests: a snapshot of everything a batch may write, and
the queries of a request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.models import Consent, ConsentChange, Profile, ProfileEvent
from governance.models import AuditEvent, OutboxEvent


def db_state() -> dict[str, Any]:
    """Row counts and contents of what ingestion writes, to prove a refusal wrote nothing."""
    return {
        "profiles": list(Profile.objects.order_by("pk").values()),
        "consents": list(Consent.objects.order_by("pk").values()),
        "ledger": ConsentChange.objects.count(),
        "events": ProfileEvent.objects.count(),
        "outbox": OutboxEvent.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def queries_of(call: Callable[[], Any]) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        call()
    return [q["sql"] for q in ctx.captured_queries]
