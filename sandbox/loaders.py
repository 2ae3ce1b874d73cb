"""Bulk paths for sandbox resets: set-based delete, COPY on PostgreSQL, batches on SQLite.

Both loaders take the rows of `sandbox.generator.SandboxData` and must run inside the
caller's transaction. Neither drops or disables anything: indexes and foreign keys stay
valid throughout, so a reset that fails leaves the old data exactly as it was.

PostgreSQL: profile ids are reserved up front from the table's own sequence (so other
sessions inserting at the same time can never collide with them), then each table is one
`COPY … FROM STDIN` fed with pre-formatted text chunks while the generator produces the
next chunk — PostgreSQL parses and indexes one chunk while Python builds the next.
"""

from __future__ import annotations

import json
import logging
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import connection, models
from django.db.models import ForeignObjectRel, ManyToManyRel

from audiences.models import Consent, ConsentChange, Profile, ProfileEvent
from sandbox.generator import CONSENT_SOURCE, DAY, SandboxData, anchor_datetime

logger = logging.getLogger(__name__)

CHUNK_ROWS = 5000


@dataclass(frozen=True)
class Counts:
    profiles: int = 0
    consents: int = 0
    consent_changes: int = 0
    profile_events: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "profiles": self.profiles,
            "consents": self.consents,
            "consent_changes": self.consent_changes,
            "profile_events": self.profile_events,
        }


# --- delete -----------------------------------------------------------------------

LABELS = {
    Consent._meta.db_table: "consents",
    ConsentChange._meta.db_table: "consent_changes",
    ProfileEvent._meta.db_table: "profile_events",
    Profile._meta.db_table: "profiles",
}


def _dependents(model: type[models.Model]) -> Iterator[tuple[type[models.Model], models.Field, bool]]:
    """(model, foreign key column field, is a SET_NULL) for every table that references `model`.

    Found from the model registry rather than listed by hand, so a table that later gains a
    foreign key to Profile (memberships, suppressions…) is emptied too instead of making
    the reset fail on a constraint.
    """
    # include_hidden: a reverse relation named "+" (Membership.profile) still holds a foreign key.
    relations = [
        f for f in model._meta.get_fields(include_hidden=True) if isinstance(f, ForeignObjectRel) and f.auto_created
    ]
    seen: set[tuple[str, str]] = set()
    for rel in relations:
        found: list[tuple[type[models.Model], models.Field, bool]] = []
        if isinstance(rel, ManyToManyRel):
            through = rel.through
            assert through is not None  # set (auto-created when not given) once the app registry is ready
            found = [
                (through, f, False)
                for f in through._meta.get_fields()
                if isinstance(f, models.ForeignKey) and f.related_model is model
            ]
        else:
            fk = rel.field
            # django-stubs does not declare ForeignKey.db_constraint (Django sets it in __init__).
            constrained = isinstance(fk, models.ForeignKey) and fk.db_constraint  # type: ignore[attr-defined]
            if constrained and not fk.model._meta.proxy:
                found = [(fk.model, fk, rel.on_delete is models.SET_NULL)]
        for dependent, field, set_null in found:
            key = (dependent._meta.db_table, column_of(field))
            if key not in seen:
                seen.add(key)
                yield dependent, field, set_null


def column_of(field: models.Field | ForeignObjectRel) -> str:
    """The database column of a concrete field (a reverse relation has none)."""
    column = getattr(field, "column", None)
    if not isinstance(column, str):
        raise TypeError(f"{field} has no column of its own")
    return column


def _pk_column(model: type[models.Model]) -> str:
    pk = model._meta.pk
    assert pk is not None
    return column_of(pk)


def delete_environment_data(environment_id: int) -> dict[str, int]:
    """Delete the environment's profiles and every row that references them, set-based.

    One `DELETE … WHERE profile_id IN (SELECT id FROM audiences_profile WHERE
    environment_id = %s)` per table — never Django's cascading delete, which would load
    every row into Python first. Returns the number of rows deleted per table.
    """
    quote = connection.ops.quote_name
    profile_table = quote(Profile._meta.db_table)
    env_column = quote(column_of(Profile._meta.get_field("environment")))
    selection = f"SELECT {quote(_pk_column(Profile))} FROM {profile_table} WHERE {env_column} = %s"  # noqa: S608
    deleted: dict[str, int] = {}
    with connection.cursor() as cursor:
        _delete_dependents(cursor, Profile, selection, [environment_id], deleted, depth=0)
        started = time.monotonic()
        cursor.execute(f"DELETE FROM {profile_table} WHERE {env_column} = %s", [environment_id])  # noqa: S608
        deleted["profiles"] = cursor.rowcount
        logger.debug("DELETE profiles: %s rows in %.1f s", f"{cursor.rowcount:,}", time.monotonic() - started)
    if connection.vendor == "postgresql" and deleted["profiles"]:
        # One deferred foreign-key check per deleted profile and referencing table: run them
        # now, while the pages just read are still cached, not after a million-row load.
        started = time.monotonic()
        connection.check_constraints()
        logger.debug("foreign key checks of the delete in %.1f s", time.monotonic() - started)
    return deleted


def _delete_dependents(
    cursor: Any, model: type[models.Model], selection: str, params: list[Any], deleted: dict[str, int], depth: int
) -> None:
    if depth > 4:
        raise RuntimeError(f"References to {model._meta.label} nest too deep to delete set-based")
    quote = connection.ops.quote_name
    for dependent, fk, set_null in _dependents(model):
        table = quote(dependent._meta.db_table)
        column = quote(column_of(fk))
        where = f"{column} IN ({selection})"
        if set_null:
            cursor.execute(f"UPDATE {table} SET {column} = NULL WHERE {where}", params)  # noqa: S608
            continue
        if dependent is not model and any(True for _ in _dependents(dependent)):
            pk = quote(_pk_column(dependent))
            inner = f"SELECT {pk} FROM {table} WHERE {where}"  # noqa: S608
            _delete_dependents(cursor, dependent, inner, params, deleted, depth + 1)
        started = time.monotonic()
        cursor.execute(f"DELETE FROM {table} WHERE {where}", params)  # noqa: S608
        label = LABELS.get(dependent._meta.db_table, dependent._meta.db_table)
        deleted[label] = deleted.get(label, 0) + cursor.rowcount
        logger.debug("DELETE %s: %s rows in %.1f s", label, f"{cursor.rowcount:,}", time.monotonic() - started)


# --- PostgreSQL: COPY ---------------------------------------------------------------


class TimeText:
    """Timestamp text: seconds before the anchor → '2026-11-28 13:05:09+00'.

    Built from a per-day and a per-second-of-day table; `datetime` arithmetic and
    `strftime` per row would cost more than the rest of a consent row. SQLite stores
    Django's datetimes as naive UTC text, hence `zone=""` there.
    """

    def __init__(self, anchor: date, zone: str = "+00") -> None:
        self.anchor = anchor
        self._days: list[str] = []
        self._tod = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{zone}" for s in range(DAY)]

    def _day(self, days_back: int) -> str:
        days = self._days
        while len(days) <= days_back:
            days.append((self.anchor - timedelta(days=len(days))).isoformat() + " ")
        return days[days_back]

    def __call__(self, offset: int) -> str:
        days_back, rest = divmod(offset, DAY)
        if rest:
            return self._day(days_back + 1) + self._tod[DAY - rest]
        return self._day(days_back) + self._tod[0]


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def text(value: str | None) -> str:
    """A value in COPY text format: NULL as \\N, backslash and separators escaped."""
    if value is None:
        return "\\N"
    return value.translate(_ESCAPES)


def _json_text(value: str) -> str:
    # JSON text escapes control characters itself; only its backslashes need doubling.
    return value.replace("\\", "\\\\") if "\\" in value else value


def _columns(model: type[models.Model], *names: str) -> str:
    quote = connection.ops.quote_name
    return ", ".join(quote(column_of(model._meta.get_field(name))) for name in names)


def reserve_profile_ids(cursor: Any, count: int) -> array:
    """Take `count` values from the profile id sequence in one round trip.

    nextval() is atomic per value, so ids another session takes at the same time are
    simply skipped; the query returns the taken values as contiguous ranges (one, unless
    someone else inserted profiles meanwhile).
    """
    if count == 0:
        return array("q")
    table = Profile._meta.db_table
    cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, _pk_column(Profile)])
    (sequence,) = cursor.fetchone()
    cursor.execute(
        """
        SELECT min(v), max(v) FROM (
            SELECT v, v - row_number() OVER (ORDER BY v) AS island
            FROM (SELECT nextval(%s::regclass) AS v FROM generate_series(1, %s)) AS taken
        ) AS numbered
        GROUP BY island ORDER BY 1
        """,
        [sequence, count],
    )
    ids = array("q")
    for low, high in cursor.fetchall():
        ids.extend(range(low, high + 1))
    if len(ids) != count:
        raise RuntimeError(f"reserved {len(ids)} profile ids instead of {count}")
    return ids


def _copy(cursor: Any, sql: str, lines: Iterable[str]) -> int:
    """Stream `lines` into `COPY … FROM STDIN` in chunks of CHUNK_ROWS rows."""
    rows = 0
    chunk: list[str] = []
    append = chunk.append
    with cursor.copy(sql) as copy:
        write = copy.write
        for line in lines:
            append(line)
            if len(chunk) >= CHUNK_ROWS:
                write("".join(chunk))
                rows += len(chunk)
                chunk.clear()
        if chunk:
            write("".join(chunk))
            rows += len(chunk)
    return rows


# label → (model, fields in COPY order); the id of every table but profiles comes from its default.
COPY_COLUMNS: dict[str, tuple[type[models.Model], tuple[str, ...]]] = {
    "profiles": (
        Profile,
        (
            "id",
            "environment",
            "external_id",
            "email",
            "phone",
            "push_token",
            "first_name",
            "last_name",
            "locale",
            "country",
            "region",
            "lifecycle_stage",
            "attributes",
            "created_at",
            "updated_at",
        ),
    ),
    "consents": (Consent, ("profile", "channel", "status", "source", "captured_at", "updated_at")),
    "consent_changes": (
        ConsentChange,
        ("profile", "channel", "previous_status", "status", "source", "captured_at", "recorded_at", "request_id"),
    ),
    "profile_events": (ProfileEvent, ("profile", "type", "occurred_at", "properties", "event_id", "received_at")),
}


def copy_statements() -> dict[str, str]:
    """The COPY … FROM STDIN statement of each table, in load order (the benchmark uses them too)."""
    quote = connection.ops.quote_name
    return {
        label: f"COPY {quote(model._meta.db_table)} ({_columns(model, *names)}) FROM STDIN"
        for label, (model, names) in COPY_COLUMNS.items()
    }


def copy_lines(data: SandboxData, environment_id: int, ids: Sequence[int]) -> dict[str, Callable[[], Iterator[str]]]:
    """Per table, a generator of COPY text lines (the exact bytes the loader sends)."""
    ts = TimeText(data.anchor)
    env = str(environment_id)
    source = text(CONSENT_SOURCE)

    def profiles() -> Iterator[str]:
        for p in data.profiles():
            yield (
                f"{ids[p.position]}\t{env}\t{text(p.external_id)}\t{text(p.email)}\t{text(p.phone)}\t"
                f"{text(p.push_token)}\t{text(p.first_name)}\t{text(p.last_name)}\t{text(p.locale)}\t{text(p.country)}\t"
                f"{text(p.region)}\t{text(p.lifecycle_stage)}\t{_json_text(p.attributes)}\t"
                f"{ts(p.created_off)}\t{ts(p.updated_off)}\n"
            )

    def consents() -> Iterator[str]:
        for c in data.consents():
            when = ts(c.captured_off)
            yield f"{ids[c.position]}\t{c.channel}\t{c.status}\t{source}\t{when}\t{when}\n"

    def consent_changes() -> Iterator[str]:
        for c in data.consents():
            when = ts(c.captured_off)
            yield f"{ids[c.position]}\t{c.channel}\t\\N\t{c.status}\t{source}\t{when}\t{when}\t\n"

    def profile_events() -> Iterator[str]:
        for e in data.events():
            when, props = ts(e.occurred_off), _json_text(e.properties)
            yield f"{ids[e.position]}\t{e.type}\t{when}\t{props}\t\\N\t{ts(e.received_off)}\n"

    return {
        "profiles": profiles,
        "consents": consents,
        "consent_changes": consent_changes,
        "profile_events": profile_events,
    }


def load_copy(data: SandboxData, environment_id: int) -> Counts:
    """Load every row with COPY (PostgreSQL, psycopg 3), in the caller's transaction."""
    with connection.cursor() as cursor:
        ids = reserve_profile_ids(cursor, data.total_profiles)
        statements = copy_statements()
        lines = copy_lines(data, environment_id, ids)
        counts: dict[str, int] = {}
        for table, sql in statements.items():
            started = time.monotonic()
            counts[table] = _copy(cursor, sql, lines[table]())
            logger.debug("COPY %s: %s rows in %.1f s", table, f"{counts[table]:,}", time.monotonic() - started)
    # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: check the millions of pending
    # references now rather than at COMMIT, so a failure surfaces here and the reset's
    # recorded duration includes the checks. (SET CONSTRAINTS ALL IMMEDIATE, then back to
    # DEFERRED, as loaddata does; the caller's transaction keeps its usual mode.)
    started = time.monotonic()
    connection.check_constraints()
    logger.debug("deferred foreign key checks in %.1f s", time.monotonic() - started)
    return Counts(**counts)


# --- SQLite: bulk_create and executemany ----------------------------------------------

BATCH = 2000
MANY_BATCH = 5000


def _batched(rows: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert_many(model: type[models.Model], fields: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> int:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column_of(model._meta.get_field(name))) for name in fields)
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"  # noqa: S608
    count = 0
    with connection.cursor() as cursor:
        for batch in _batched(rows, MANY_BATCH):
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


def load_batched(data: SandboxData, environment_id: int) -> Counts:
    """Load every row in batches: bulk_create for profiles, executemany for the rest (SQLite).

    Profiles go through bulk_create, which hands their new ids back. Consent, the ledger and
    events carry no logic a model would add, so they skip Django's per-object work
    (instances, field preparation, datetime adaptation), which tripled the time of the
    20,000-profile sandbox of `make run`; values are pre-formatted the way Django stores
    them on SQLite (naive UTC datetimes, JSON text).
    """
    anchor = anchor_datetime(data.anchor)
    ts = TimeText(data.anchor, zone="")

    def at(offset: int) -> Any:
        return anchor - timedelta(seconds=offset)

    ids: list[int] = []
    for batch in _batched(data.profiles()):
        created = Profile.objects.bulk_create(
            [
                Profile(
                    environment_id=environment_id,
                    external_id=p.external_id,
                    email=p.email,
                    phone=p.phone,
                    push_token=p.push_token,
                    first_name=p.first_name,
                    last_name=p.last_name,
                    locale=p.locale,
                    country=p.country,
                    region=p.region,
                    lifecycle_stage=p.lifecycle_stage,
                    attributes=json.loads(p.attributes),
                    created_at=at(p.created_off),
                    updated_at=at(p.updated_off),
                )
                for p in batch
            ]
        )
        ids.extend(p.pk for p in created)
    if ids and ids[0] is None:  # a backend that cannot return ids from a bulk insert
        by_external_id = dict(Profile.objects.filter(environment_id=environment_id).values_list("external_id", "id"))
        ids = [by_external_id[p.external_id] for p in data.profiles()]

    consents = _insert_many(
        Consent,
        COPY_COLUMNS["consents"][1],
        (
            (ids[c.position], c.channel, c.status, CONSENT_SOURCE, ts(c.captured_off), ts(c.captured_off))
            for c in data.consents()
        ),
    )
    changes = _insert_many(
        ConsentChange,
        COPY_COLUMNS["consent_changes"][1],
        (
            (ids[c.position], c.channel, None, c.status, CONSENT_SOURCE, ts(c.captured_off), ts(c.captured_off), "")
            for c in data.consents()
        ),
    )
    events = _insert_many(
        ProfileEvent,
        COPY_COLUMNS["profile_events"][1],
        ((ids[e.position], e.type, ts(e.occurred_off), e.properties, None, ts(e.received_off)) for e in data.events()),
    )
    return Counts(profiles=len(ids), consents=consents, consent_changes=changes, profile_events=events)


def load(data: SandboxData, environment_id: int) -> tuple[Counts, str]:
    """Load with the fastest path the database offers; returns the counts and the method."""
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        if is_psycopg3:  # COPY from Python needs psycopg 3's cursor.copy()
            return load_copy(data, environment_id), "copy"
    return load_batched(data, environment_id), "batched"
