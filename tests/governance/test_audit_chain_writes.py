"""How the chain is written on PostgreSQL: lock, head and insert in one round trip, with
the hash computed by the database over exactly the canonical JSON that verify checks."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from governance.actors import Actor
from governance.audit import chain, errors
from governance.audit import trail as audit
from governance.models import AuditEvent, Door
from tests.conftest import require_service

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement write is PostgreSQL's")

AWKWARD = {
    "label": 'Ünïcode “quotes” "double" \\ back\\slash 100% it\'s \u2028 \U0001f600',
    "prev_hash": "a key that looks like the chain's own",
    "nested": {"prev_hash": '"prev_hash":"', "n": [1, 2.5, None, True]},
}


def test_one_event_is_one_statement_and_verifies(sandbox):
    actor = Actor.system(sandbox, door=Door.API, request_id="req_x")

    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        first = audit.record(actor, "profile.ingest", ("environment", sandbox.pk, AWKWARD["label"]), changes=AWKWARD)
    with transaction.atomic():
        second_event = audit.record(actor, "profile.ingest", None, reasons=["ü", '"'])

    statements = [q["sql"] for q in captured.captured_queries if "governance_auditevent" in q["sql"]]
    assert len(statements) == 1 and "pg_advisory_xact_lock" in statements[0]
    stored = AuditEvent.objects.get(pk=first.pk)
    assert stored.hash == first.hash == chain.compute_hash(stored)
    assert stored.changes == AWKWARD and stored.target_label == AWKWARD["label"]
    assert second_event.prev_hash == first.hash
    assert chain.check_chain(sandbox.pk).valid


def test_events_without_an_environment_chain_apart(sandbox):
    with transaction.atomic():
        audit.record(Actor.system(sandbox), "profile.ingest", None)
    nowhere = Actor.system(sandbox)
    object.__setattr__(nowhere, "environment", None)  # AuditEvent.environment may be empty
    with transaction.atomic():
        one = audit.record(nowhere, "x.y", None)
        two = audit.record(nowhere, "x.y", None)

    assert one.environment_id is None and one.prev_hash == chain.GENESIS and two.prev_hash == one.hash
    assert chain.check_chain(None).valid and chain.check_chain(sandbox.pk).valid


def test_a_hash_the_database_disagrees_with_is_never_written(sandbox, monkeypatch):
    class Disagreeing:
        @staticmethod
        def sha256(data: bytes):
            return hashlib.sha256(data + b"!")

    monkeypatch.setattr(audit, "hashlib", Disagreeing)

    with pytest.raises(errors.ChainWriteError), transaction.atomic():
        audit.record(Actor.system(sandbox), "profile.ingest", None)

    assert not AuditEvent.objects.filter(environment=sandbox).exists()


@pytest.mark.services
@pytest.mark.slow
def test_concurrent_writers_of_one_environment_make_one_valid_chain(django_db_serialized_rollback, transactional_db):
    from governance.models import Environment

    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "concurrent writers need PostgreSQL")
    sandbox = Environment.objects.get(slug="sandbox")
    writers, each = 6, 20
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with transaction.atomic():
                    audit.record(Actor.system(sandbox), "profile.ingest", ("writer", n, f"event {i}"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    report = chain.check_chain(sandbox.pk)
    assert report.valid and report.checked == writers * each
    rows = list(AuditEvent.objects.filter(environment=sandbox).order_by("id").values_list("prev_hash", "hash"))
    assert [prev for prev, _ in rows[1:]] == [h for _, h in rows[:-1]]


ADDRESSES = [
    "203.0.113.7",
    "2001:DB8::1",
    "2001:0db8:0000:0000:0000:0000:0000:0001",
    "2001:db8:0:0:1:0:0:1",
    "1:0:2:3:4:5:6:7",
    "::ffff:1.2.3.4",
    "::ffff:0:1.2.3.4",
    "::1.2.3.4",
    "::0.0.0.2",
    "::0.0.255.255",
    "::0.1.0.0",
    "::2:0",
    "::ffff:0:0",
    "::1:ffff:1.2.3.4",
    "::1",
    "::",
    "fe80::1%eth0",
    " 198.51.100.1 ",
]


def test_any_spelling_of_an_address_is_stored_as_it_is_hashed(sandbox):
    """The chain hashes the address it writes; verify hashes what PostgreSQL gives back."""
    with transaction.atomic():
        events = [
            audit.record(Actor(user=None, environment=sandbox, door=Door.API, ip=ip), "x.y", None) for ip in ADDRESSES
        ]
    stored = {e.pk: e.ip for e in AuditEvent.objects.filter(pk__in=[e.pk for e in events])}

    assert [stored[e.pk] for e in events] == [e.ip for e in events]
    assert chain.check_chain(sandbox.pk).valid


def test_what_is_not_an_address_is_recorded_as_no_address(sandbox):
    with transaction.atomic():
        event = audit.record(Actor(user=None, environment=sandbox, door=Door.API, ip="not-an-ip"), "x.y", None)

    assert event.ip is None and AuditEvent.objects.get(pk=event.pk).ip is None
    assert chain.check_chain(sandbox.pk).valid


def test_the_spelling_matches_postgresql_for_many_addresses(db):
    import ipaddress
    import random

    rng = random.Random(7)
    words = [0, 0, 0, 1, 0xFFFF, 0x10, 0xABCD]
    samples = [
        str(ipaddress.IPv6Address(sum(rng.choice(words) << (16 * i) for i in range(8)))).upper() for _ in range(400)
    ]
    samples += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(50)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT host(a::inet) FROM unnest(%s::text[]) AS a", [samples])
        expected = [row[0] for row in cursor.fetchall()]

    assert [audit.normalized_ip(s) for s in samples] == expected
