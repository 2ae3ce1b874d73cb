"""The PostgreSQL fast path of an export that masks nothing (a PII export, or fields without
PII): the database writes the rows itself with `COPY (SELECT …) TO STDOUT`, in chunks of
profile ids, and the worker only moves bytes to the file — close to a bare `COPY`.

Each chunk is one COPY of the members whose profile id falls in a range (about
CHUNK_ROWS rows), in profile id order, so the file has the same rows in the same order as
the general path (runner.py), and the job's progress (its heartbeat) is recorded between
chunks. Values are written as the general path writes them: text as stored, NULL as an
empty CSV field or JSON null, dates in ISO 8601, custom attributes as text.

JSON lines: each row is `row_to_json(…)::text`, copied in CSV mode with a quote and a
delimiter that JSON text never contains unescaped, so the line is the JSON itself.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from typing import IO

from django.db import connection
from psycopg import sql

from audiences.exports.columns import ATTRIBUTE_PREFIX
from audiences.models import AudienceVersion, Membership, Profile

CHUNK_ROWS = 100_000
DATED = ("created_at", "updated_at")


def _expression(name: str) -> sql.Composable:
    if name.startswith(ATTRIBUTE_PREFIX):
        return sql.SQL("p.attributes ->> {}").format(sql.Literal(name[len(ATTRIBUTE_PREFIX) :]))
    column = sql.SQL("p.{}").format(sql.Identifier(name))
    if name in DATED:
        return sql.SQL("to_json({}) #>> '{{}}'").format(column)
    return column


def _columns(fields: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{} AS {}").format(_expression(name), sql.Identifier(name)) for name in fields)


def _options(fmt: str) -> sql.Composable:
    if fmt == "csv":
        return sql.SQL("(FORMAT csv)")
    return sql.SQL("(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')")


def copy_members(
    out: IO[bytes],
    *,
    fmt: str,
    fields: Sequence[str],
    version_id: int,
    on_chunk: Callable[[int], None],
) -> tuple[int, int]:
    """Write the version's members to `out`; (rows, bytes). `on_chunk(rows so far)` runs
    after each chunk (the caller records progress)."""
    size = 0
    if fmt == "csv":
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow(list(fields))
        data = header.getvalue().encode()
        out.write(data)
        size += len(data)
    bounds = Membership.objects.filter(version_id=version_id).order_by("profile_id")
    first = bounds.values_list("profile_id", flat=True).first()
    last = bounds.reverse().values_list("profile_id", flat=True).first()
    if first is None or last is None:
        return 0, size
    members = AudienceVersion.objects.filter(pk=version_id).values_list("members", flat=True).first() or 1
    step = max(1, math.ceil((last - first + 1) * CHUNK_ROWS / max(members, 1)))
    inner = sql.SQL(
        "SELECT {columns} FROM {membership} m JOIN {profile} p ON p.id = m.profile_id "
        "WHERE m.version_id = {version} AND m.profile_id >= {low} AND m.profile_id < {high} "
        "ORDER BY m.profile_id"
    )
    # JSON lines: row_to_json keeps the columns' order and writes compact JSON, as the
    # general path's json.dumps(separators=(",", ":"), ensure_ascii=False) does.
    outer = sql.SQL(
        "COPY ({inner}) TO STDOUT WITH {options}"
        if fmt == "csv"
        else "COPY (SELECT row_to_json(r)::text FROM ({inner}) r) TO STDOUT WITH {options}"
    )
    rows = 0
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    for low in range(first, last + 1, step):
        select = inner.format(
            columns=_columns(fields),
            membership=sql.Identifier(Membership._meta.db_table),
            profile=sql.Identifier(Profile._meta.db_table),
            version=sql.Literal(version_id),
            low=sql.Literal(low),
            high=sql.Literal(low + step),
        )
        query = outer.format(inner=select, options=_options(fmt))
        with raw.cursor() as cursor:
            with cursor.copy(query) as copy:
                for chunk in copy:
                    out.write(chunk)
                    size += len(chunk)
            rows += max(cursor.rowcount, 0)
        on_chunk(rows)
    return rows, size
