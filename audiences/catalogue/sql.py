"""The catalogue's set-based upserts: one `INSERT … SELECT … ON CONFLICT DO UPDATE` per batch.

Every source of names becomes rows of "documents" first — a JSON object per profile
(its `attributes`) or per event (`{"t": type, "p": properties}`), with the environment and
the times it was seen — either from the request's batch, bound as ONE JSON parameter
(`jsonb_array_elements` on PostgreSQL, `json_each` on SQLite), or from the stored tables
(a sandbox reset, the backfill). The documents are expanded into (kind, event type, key,
JSON type) rows with `jsonb_each` / `json_each`, grouped, and merged into what is stored:
types are OR-ed as bits (`bit_or`; on SQLite `SUM(DISTINCT bit)`, the same for powers of
two), counts added, first and last seen widened. Never a statement per row.
"""

# Every statement here is assembled from table names of the models and fixed SQL; every
# value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from audiences.models import CatalogueEntry, CatalogueKind, Profile, ProfileEvent

MAX_KEY = 255  # longer keys are not catalogued (rules accept keys of up to 64 characters)


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _bit(value: str) -> str:
    """The VALUE_TYPE_BITS bit of a JSON value (PostgreSQL: a jsonb; SQLite: json_each's `type`)."""
    if _postgres():
        return (
            f"CASE jsonb_typeof({value}) WHEN 'string' THEN 1 WHEN 'number' THEN 2 WHEN 'boolean' THEN 4 "
            "WHEN 'array' THEN 8 WHEN 'object' THEN 16 ELSE 32 END"
        )
    return (
        f"CASE {value} WHEN 'text' THEN 1 WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'true' THEN 4 "
        "WHEN 'false' THEN 4 WHEN 'array' THEN 8 WHEN 'object' THEN 16 ELSE 32 END"
    )


# --- documents -------------------------------------------------------------------------------
# Each is (sql, params) selecting: environment_id, doc (a JSON object: a profile's attributes
# or an event's properties), t (the event type; NULL for profiles), first_at, last_at.


def batch_documents(environment_id: int, docs: str, seen_at: datetime, *, events: bool) -> tuple[str, list[Any]]:
    """The documents of a request's batch, `docs` being one JSON array bound as ONE parameter:
    the profiles' `attributes` objects, or `{"t": type, "p": properties}` per event."""
    at = connection.ops.adapt_datetimefield_value(seen_at)
    if _postgres():
        doc, kind = ("value->'p'", "value->>'t'") if events else ("value", "NULL")
        sql = (
            f"SELECT %s::bigint AS environment_id, {doc} AS doc, {kind} AS t, "
            "%s::timestamptz AS first_at, %s::timestamptz AS last_at FROM jsonb_array_elements(%s::jsonb)"
        )
    else:
        doc, kind = ("json_extract(value, '$.p')", "json_extract(value, '$.t')") if events else ("value", "NULL")
        sql = (
            f"SELECT %s AS environment_id, {doc} AS doc, {kind} AS t, %s AS first_at, %s AS last_at FROM json_each(%s)"
        )
    return sql, [environment_id, at, at, docs]


def profile_documents(environment_id: int | None) -> tuple[str, list[Any]]:
    """The stored profiles' attributes (of one environment, or of all)."""
    where, params = ("WHERE environment_id = %s", [environment_id]) if environment_id is not None else ("", [])
    sql = (
        "SELECT environment_id, attributes AS doc, NULL AS t, created_at AS first_at, updated_at AS last_at "
        f"FROM {_table(Profile)} {where}"
    )
    return sql, params


def event_documents(environment_id: int | None) -> tuple[str, list[Any]]:
    """The stored profile events' types and properties (of one environment, or of all)."""
    where, params = ("WHERE p.environment_id = %s", [environment_id]) if environment_id is not None else ("", [])
    sql = (
        "SELECT p.environment_id, e.properties AS doc, e.type AS t, e.received_at AS first_at, "
        f"e.received_at AS last_at FROM {_table(ProfileEvent)} e JOIN {_table(Profile)} p ON p.id = e.profile_id "
        f"{where}"
    )
    return sql, params


# --- names -----------------------------------------------------------------------------------


def attribute_names(documents: str) -> str:
    """(environment_id, kind, event_type, key, bit, first_at, last_at) of each key of each document."""
    if _postgres():
        return (
            f"SELECT d.environment_id, '{CatalogueKind.ATTRIBUTE}' AS kind, '' AS event_type, a.key, "
            f"{_bit('a.value')} AS bit, d.first_at, d.last_at FROM ({documents}) d "
            "CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(d.doc) = 'object' THEN d.doc ELSE '{}'::jsonb END) a"
        )
    return (
        f"SELECT d.environment_id, '{CatalogueKind.ATTRIBUTE}' AS kind, '' AS event_type, a.key, "
        f"{_bit('a.type')} AS bit, d.first_at, d.last_at FROM ({documents}) d, json_each(d.doc) a "
        "WHERE json_type(d.doc) = 'object'"
    )


def event_names(documents: str) -> str:
    """The event type of each document, and each of its properties (keyed by the type)."""
    if _postgres():
        # One pass over the documents: the type and the properties of each, side by side.
        return (
            "SELECT d.environment_id, n.kind, n.event_type, n.key, n.bit, d.first_at, d.last_at "
            f"FROM ({documents}) d CROSS JOIN LATERAL ("
            f"SELECT '{CatalogueKind.EVENT}' AS kind, '' AS event_type, d.t AS key, 0 AS bit "
            f"UNION ALL SELECT '{CatalogueKind.EVENT_PROPERTY}', d.t, p.key, {_bit('p.value')} "
            "FROM jsonb_each(CASE WHEN jsonb_typeof(d.doc) = 'object' THEN d.doc ELSE '{}'::jsonb END) p"
            ") n"
        )
    # SQLite has no LATERAL: the documents are read twice (development and tests only).
    return (
        f"SELECT d.environment_id, '{CatalogueKind.EVENT}' AS kind, '' AS event_type, d.t AS key, 0 AS bit, "
        f"d.first_at, d.last_at FROM ({documents}) d "
        f"UNION ALL SELECT d.environment_id, '{CatalogueKind.EVENT_PROPERTY}', d.t, p.key, {_bit('p.type')}, "
        f"d.first_at, d.last_at FROM ({documents}) d, json_each(d.doc) p WHERE json_type(d.doc) = 'object'"
    )


# --- the upsert ------------------------------------------------------------------------------


def upsert(names: str) -> str:
    """Merge `names` (rows of attribute_names / event_names) into the catalogue, one statement."""
    table = _table(CatalogueEntry)
    if _postgres():
        # bit_or is a plain aggregate, so the few groups are hashed; a DISTINCT aggregate
        # would sort every name of the batch first (spilling to disk at a million rows).
        earlier, later, types = "LEAST", "GREATEST", "bit_or(bit)"
    else:  # SQLite's two-argument min() and max() are scalar functions; SUM(DISTINCT) ORs the bits
        earlier, later, types = "MIN", "MAX", "SUM(DISTINCT bit)"
    return f"""
        INSERT INTO {table}
            (environment_id, kind, event_type, key, value_types, seen_count, first_seen_at, last_seen_at, pii)
        SELECT environment_id, kind, event_type, key, {types}, COUNT(*), MIN(first_at), MAX(last_at),
               {"false" if _postgres() else "0"}
        FROM ({names}) names
        WHERE key IS NOT NULL AND key <> '' AND length(key) <= {MAX_KEY} AND length(event_type) <= 64
        GROUP BY environment_id, kind, event_type, key
        ON CONFLICT (environment_id, kind, event_type, key) DO UPDATE SET
            value_types = {table}.value_types | excluded.value_types,
            seen_count = {table}.seen_count + excluded.seen_count,
            first_seen_at = {earlier}({table}.first_seen_at, excluded.first_seen_at),
            last_seen_at = {later}({table}.last_seen_at, excluded.last_seen_at)
    """


Documents = tuple[str, list[Any]]


def attributes_statement(documents: Documents) -> Documents:
    """The upsert of the attribute keys of `documents`, and its parameters."""
    sql, params = documents
    return upsert(attribute_names(sql)), list(params)


def events_statement(documents: Documents) -> Documents:
    """The upsert of the event types and properties of `documents`, and its parameters."""
    sql, params = documents
    # SQLite reads the documents twice (no LATERAL), so it binds their parameters twice.
    return upsert(event_names(sql)), list(params) * (1 if _postgres() else 2)


def run(statement: Documents) -> int:
    """Execute one upsert; how many entries it inserted or updated."""
    sql, params = statement
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
