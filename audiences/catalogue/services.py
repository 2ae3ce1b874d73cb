"""The catalogue of custom attribute keys, profile event types and event properties seen in
each environment (audiences.models.CatalogueEntry).

Kept current by ingestion, set-based: the profile and event ingestion services record
their batch in ONE statement each (`record_profile_attributes`, `record_events`; they
asked the policy and audit the ingestion themselves), and a sandbox reset rebuilds the
environment's catalogue from what it loaded (`rebuild`). The SQL is in sql.py. Existing
data was catalogued by migration 0010.

Admins mark an entry as personal data (`catalogue_entry_mark_pii`): asked of the policy
once, audited with before and after.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from audiences.catalogue import sql
from audiences.models import CatalogueEntry
from governance import policy
from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import Environment


def _json(documents: list[Any]) -> str:
    return json.dumps(documents, cls=DjangoJSONEncoder, separators=(",", ":"))


def record_profile_attributes(*, environment: Environment, rows: Sequence[Mapping[str, Any]], seen_at: datetime) -> int:
    """Catalogue the attribute keys of a batch of profile rows (those that send `attributes`),
    in one statement. Called by the profile ingestion service, in its transaction."""
    documents = [row["attributes"] for row in rows if isinstance(row.get("attributes"), Mapping) and row["attributes"]]
    if not documents:
        return 0
    return sql.run(
        sql.attributes_statement(sql.batch_documents(environment.pk, _json(documents), seen_at, events=False))
    )


def record_events(*, environment: Environment, events: Sequence[Mapping[str, Any]], seen_at: datetime) -> int:
    """Catalogue the types and properties of a batch of profile events, in one statement.
    Called by the event ingestion service, in its transaction."""
    if not events:
        return 0
    documents = [{"t": event["type"], "p": event.get("properties") or {}} for event in events]
    return sql.run(sql.events_statement(sql.batch_documents(environment.pk, _json(documents), seen_at, events=True)))


def rebuild(*, environment: Environment) -> int:
    """The environment's catalogue from its stored profiles and events, after a sandbox reset
    replaced them: what no longer occurs goes (unless an admin marked it personal data, a
    setting worth keeping), the rest is counted afresh. Four set-based statements."""
    entries = CatalogueEntry.objects.filter(environment=environment)
    entries.filter(pii=False).delete()
    entries.update(value_types=0, seen_count=0)
    written = sql.run(sql.attributes_statement(sql.profile_documents(environment.pk)))
    return written + sql.run(sql.events_statement(sql.event_documents(environment.pk)))


def catalogue_entry_mark_pii(*, actor: Actor, entry: CatalogueEntry, pii: bool) -> CatalogueEntry:
    """Mark a custom attribute (or event property) as personal data, or take the mark back.
    Admins only (`catalogue.mark_pii`); audited with before and after."""
    decision = policy.require(actor, "catalogue.mark_pii", entry)
    with transaction.atomic():
        locked = CatalogueEntry.objects.select_for_update().get(pk=entry.pk)
        before = locked.pii
        if before != pii:
            locked.pii = pii
            locked.save(update_fields=["pii"])
        audit.record(
            actor,
            "catalogue.mark_pii",
            locked,
            decision=decision,
            changes={
                "entry": {"kind": locked.kind, "event_type": locked.event_type, "key": locked.key},
                "before": {"pii": before},
                "after": {"pii": pii},
            },
        )
    return locked
