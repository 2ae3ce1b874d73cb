"""The one audit point: every state-changing service writes exactly one AuditEvent with
`record(actor, action, target, …)`, in its own transaction.

Audit events are append-only (a PostgreSQL trigger refuses UPDATE, DELETE and
TRUNCATE) and hash-chained per environment (governance/audit/chain.py says what a hash
covers and how the chain is verified).

A chain serializes its writers. On PostgreSQL the writer takes a per-environment
advisory lock just before the insert; the lock is released at commit. Services
therefore record the audit event as the last write of their transaction, which keeps
the critical section to the insert and the commit.

On PostgreSQL the lock, the read of the previous hash and the insert are one round trip:
two statements sent together (`SELECT pg_advisory_xact_lock(…); INSERT … RETURNING`).
PostgreSQL takes each statement's snapshot when that statement starts, so the INSERT
reads the chain's head after the lock is granted, as committed by the writer before us.
The hash is the same SHA-256 over the same canonical JSON: Python builds the JSON with
a marker where `prev_hash` goes, the INSERT splices the previous hash in and hashes it
with `sha256()`, and Python checks the returned hash against its own before going on.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connections, models, router
from django.utils import timezone

from governance.audit.chain import GENESIS, chain_of, compute_hash, split_canonical
from governance.audit.errors import ChainWriteError
from governance.models import AuditEvent, Outcome

if TYPE_CHECKING:
    from governance.actors import Actor
    from governance.policy import Decision

# First key of the two-key advisory lock; the second is the environment id.
_LOCK_CLASS = 0x4D4B4155  # "MKAU"


def describe_target(target: Any) -> tuple[str, str, str]:
    """(type, id, label) of a model instance, a (type, id, label) tuple, or nothing."""
    if target is None:
        return "", "", ""
    if isinstance(target, tuple):
        kind, ident, label = target
        return str(kind), str(ident), str(label)[:200]
    if isinstance(target, models.Model):
        return target._meta.label_lower, str(target.pk), str(target)[:200]
    return type(target).__name__.lower(), "", str(target)[:200]


def _previous_hash(environment_id: int | None) -> str:
    """The chain's head (outside PostgreSQL, which has no lock and no concurrent writers
    to fear: SQLite serializes write transactions)."""
    last = chain_of(environment_id).order_by("-id").values_list("hash", flat=True).first()
    return last or GENESIS


class InsertColumns:
    """The columns of a model's INSERT and each value's parameter, for PostgreSQL.

    What the ORM sends, without its per-field calls for the plain values that make up
    most rows (a string for a text column, an id for a foreign key), which are most of
    the Python time of a one-row INSERT. JSON columns take the JSON text with a `::jsonb`
    cast; anything else goes through the field's `get_db_prep_save`. Also used by
    governance/outbox.py for the outbox rows.
    """

    _PLAIN = {
        models.CharField: (str,),
        models.TextField: (str,),
        models.ForeignKey: (int,),
        models.IntegerField: (int,),
        models.BigIntegerField: (int,),
        models.PositiveIntegerField: (int,),
        models.BooleanField: (bool,),
        models.UUIDField: (uuid.UUID,),
        models.DateTimeField: (datetime,),
    }

    def __init__(self, model: type[models.Model], exclude: tuple[str, ...] = ()) -> None:
        self.fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key and f.attname not in exclude)
        # Concrete fields always have a column.
        self.columns: tuple[str, ...] = tuple(str(f.column) for f in self.fields)
        self.json = tuple(isinstance(f, models.JSONField) for f in self.fields)
        self.plain = tuple(self._plain_types(f) for f in self.fields)
        self.placeholders = "(" + ", ".join("%s::jsonb" if j else "%s" for j in self.json) + ")"

    @classmethod
    def _plain_types(cls, field: Any) -> tuple[type, ...]:
        own = type(field)
        for kind in own.__mro__:
            if kind in cls._PLAIN:
                # A subclass with its own preparation (e.g. an encrypted text field) is not plain.
                same = all(
                    getattr(own, name) is getattr(kind, name) for name in ("get_db_prep_value", "get_prep_value")
                )
                return cls._PLAIN[kind] if same else ()
        return ()

    def params(self, values: Mapping[str, Any], connection: Any, json_texts: Mapping[str, str] | None = None) -> list:
        out = []
        for field, is_json, plain in zip(self.fields, self.json, self.plain, strict=True):
            value = values[field.attname]
            if is_json:
                if json_texts is not None and field.attname in json_texts:
                    out.append(json_texts[field.attname])
                else:
                    out.append(json.dumps(value, cls=getattr(field, "encoder", None)))
            elif value is None or (type(value) in plain and (type(value) is not datetime or value.tzinfo)):
                out.append(value)
            else:
                out.append(field.get_db_prep_save(value, connection))
        return out


_AUDIT_COLUMNS: InsertColumns | None = None
_CHAINED_INSERTS: dict[tuple[str, bool], str] = {}


def _audit_columns() -> InsertColumns:
    global _AUDIT_COLUMNS
    if _AUDIT_COLUMNS is None:
        _AUDIT_COLUMNS = InsertColumns(AuditEvent, exclude=("prev_hash", "hash"))
    return _AUDIT_COLUMNS


def _chained_insert_sql(connection: Any, null_environment: bool) -> str:
    """The two statements, built once per database vendor and kind of environment."""
    sql = _CHAINED_INSERTS.get((connection.vendor, null_environment))
    if sql is None:
        sql = _CHAINED_INSERTS[(connection.vendor, null_environment)] = _build_chained_insert_sql(
            connection.ops.quote_name, null_environment
        )
    return sql


def _build_chained_insert_sql(quote: Callable[[str], str], null_environment: bool) -> str:
    columns = _audit_columns()
    table, column = quote(AuditEvent._meta.db_table), quote
    env_match = "IS NULL" if null_environment else "= %s"
    # Identifiers come from the model; every value is a parameter.
    return (
        "SELECT pg_advisory_xact_lock(%s, %s); "  # noqa: S608
        f"WITH head AS (SELECT COALESCE((SELECT {column('hash')} FROM {table} "
        f"WHERE {column('environment_id')} {env_match} ORDER BY {column('id')} DESC LIMIT 1), %s) AS prev) "
        f"INSERT INTO {table} ({', '.join(column(name) for name in columns.columns)}, {column('prev_hash')}, "
        f"{column('hash')}) VALUES {columns.placeholders[:-1]}, (SELECT prev FROM head), "
        "encode(sha256(convert_to(%s || (SELECT prev FROM head) || %s, 'UTF8')), 'hex')) "
        f"RETURNING {column('id')}, {column('prev_hash')}, {column('hash')}"
    )


def _insert_chained_postgresql(
    event: AuditEvent, values: Mapping[str, Any], json_texts: Mapping[str, str], connection: Any
) -> None:
    """Lock the environment's chain, read its head and insert the row: one round trip."""
    head, tail = split_canonical(event)
    env_id = event.environment_id
    params: list[Any] = [_LOCK_CLASS, env_id or 0]
    if env_id is not None:
        params.append(env_id)
    params.append(GENESIS)
    params += _audit_columns().params(values, connection, json_texts)
    params += [head, tail]
    with connection.cursor() as cursor:
        cursor.execute(_chained_insert_sql(connection, env_id is None), params)
        cursor.nextset()
        event.pk, event.prev_hash, event.hash = cursor.fetchone()
    event._state.adding = False
    event._state.db = connection.alias
    # head + prev_hash + tail is canonical_json(event) (see split_canonical).
    if hashlib.sha256((head + event.prev_hash + tail).encode()).hexdigest() != event.hash:
        raise ChainWriteError(
            f"PostgreSQL hashed audit event {event.pk} differently from Python; check that the "
            "database encoding is UTF8. The transaction is rolled back."
        )


def normalized_ip(value: Any) -> str | None:
    """An IP address as PostgreSQL's `inet` gives it back (lower case, zeros compressed,
    IPv4-mapped and -compatible addresses dotted), or None when `value` is none.

    The audit chain hashes the address it writes and verify hashes the one it reads: they
    must be the same text, or an upper-case IPv6 address (from an X-Forwarded-For header)
    would make an intact event look altered.
    """
    if not value:
        return None
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    if address.version == 4:
        return str(address)
    number = int(address)  # drops a zone (fe80::1%eth0), which inet does not keep
    if number >> 32 == 0xFFFF:
        return f"::ffff:{ipaddress.IPv4Address(number & 0xFFFFFFFF)}"
    if number >> 32 == 0 and number >> 16:  # ::a.b.c.d with a.b not 0.0 (PostgreSQL's rule)
        return f"::{ipaddress.IPv4Address(number)}"
    return ipaddress.IPv6Address(number).compressed


def record(
    actor: Actor,
    action: str,
    target: Any = None,
    *,
    outcome: str = Outcome.ALLOWED,
    decision: Decision | None = None,
    reasons: list[str] | None = None,
    changes: dict[str, Any] | None = None,
    approval_refs: list[Any] | None = None,
) -> AuditEvent:
    """Write one audit event in the caller's transaction (make it the transaction's last write)."""
    target_type, target_id, target_label = describe_target(target)
    all_reasons = list(reasons or [])
    if decision is not None:
        all_reasons = [*decision.reasons, *all_reasons]
    json_texts = {
        "reasons": json.dumps(all_reasons, default=str),
        "changes": json.dumps(changes or {}, default=str),
        "approval_refs": json.dumps(approval_refs or [], default=str),
    }
    environment, user, token = actor.environment, actor.user, actor.token
    values: dict[str, Any] = {
        "occurred_at": timezone.now(),
        "environment_id": environment.pk if environment is not None else None,
        "actor_user_id": user.pk if user is not None else None,
        "actor_label": actor.label,
        "token_id": token.pk if token is not None else None,
        "door": actor.door,
        "ip": normalized_ip(actor.ip),
        "request_id": actor.request_id,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "target_label": target_label,
        "outcome": outcome,
        # Round-tripped now, so the hashed value is exactly what the database gives back.
        **{name: json.loads(text) for name, text in json_texts.items()},
        "prev_hash": "",
        "hash": "",
    }
    event = _new_event(values)
    cache = event._state.fields_cache
    cache["environment"], cache["actor_user"], cache["token"] = environment, user, token
    connection = connections[router.db_for_write(AuditEvent)]
    if connection.vendor == "postgresql":
        _insert_chained_postgresql(event, values, json_texts, connection)
        return event
    event.prev_hash = _previous_hash(event.environment_id)
    event.hash = compute_hash(event)
    event.save(force_insert=True)
    return event


def _new_event(values: Mapping[str, Any]) -> AuditEvent:
    """AuditEvent(**values), by position: the ORM's fast way to build an instance."""
    return AuditEvent(
        *[values[f.attname] if f.attname in values else f.get_default() for f in AuditEvent._meta.concrete_fields]
    )
