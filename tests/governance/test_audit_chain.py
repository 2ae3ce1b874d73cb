"""The audit trail is append-only and hash-chained per environment."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from governance.actors import Actor
from governance.audit import chain, errors
from governance.audit import trail as audit
from governance.models import AuditEvent


def _record(actor, n=3):
    for i in range(n):
        audit.record(actor, "profile.ingest", ("environment", actor.environment.pk, f"batch {i}"), changes={"n": i})


def test_rows_chain_per_environment(sandbox, pilot):
    _record(Actor.system(sandbox), 3)
    _record(Actor.system(pilot), 2)

    rows = list(AuditEvent.objects.filter(environment=sandbox).order_by("id"))
    assert rows[0].prev_hash == chain.GENESIS
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert all(chain.compute_hash(r) == r.hash for r in rows)
    assert AuditEvent.objects.filter(environment=pilot).order_by("id").first().prev_hash == chain.GENESIS
    assert list(chain.verify_chain(all_environments=True)) == []


def test_the_model_refuses_update_and_delete(sandbox):
    _record(Actor.system(sandbox), 1)
    event = AuditEvent.objects.get()
    event.action = "something.else"
    with pytest.raises(errors.AppendOnly):
        event.save()
    with pytest.raises(errors.AppendOnly):
        event.delete()
    with pytest.raises(errors.AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(errors.AppendOnly):
        AuditEvent.objects.all().delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only")
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE governance_auditevent SET action = 'x'",
        "DELETE FROM governance_auditevent",
        "TRUNCATE governance_auditevent CASCADE",
    ],
)
def test_postgres_trigger_refuses_raw_changes(sandbox, sql):
    _record(Actor.system(sandbox), 1)
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        # Django's foreign keys are deferred; settle them so TRUNCATE reaches the trigger.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET LOCAL marketerapi.audit_maintenance = 'off'")
        cursor.execute(sql)
    assert AuditEvent.objects.filter(action="profile.ingest").count() == 1


def _tamper(sql: str, params: list) -> None:
    """What a superuser could do: bypass the model (and on PostgreSQL, disable the trigger)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET LOCAL marketerapi.audit_maintenance = 'off'")
            cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER USER")


def test_verify_finds_an_altered_row(sandbox):
    _record(Actor.system(sandbox), 5)
    victim = AuditEvent.objects.order_by("id")[2]
    _tamper("UPDATE governance_auditevent SET actor_label = %s WHERE id = %s", ["mallory", victim.pk])

    breaks = list(chain.verify_chain(sandbox.pk))

    assert [(b.event_id, "altered" in b.reason) for b in breaks] == [(victim.pk, True)]


def test_verify_finds_a_removed_row(sandbox):
    _record(Actor.system(sandbox), 5)
    rows = list(AuditEvent.objects.order_by("id"))
    _tamper("DELETE FROM governance_auditevent WHERE id = %s", [rows[1].pk])

    breaks = list(chain.verify_chain(sandbox.pk))

    assert breaks[0].event_id == rows[2].pk
    assert "removed" in breaks[0].reason
