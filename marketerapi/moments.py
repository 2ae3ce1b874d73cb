"""One reader of moments — ISO 8601 date-times and dates — for every door and for the rules.

Python accepts UTC offsets up to ±23:59, PostgreSQL only up to ±15:59: a value such as
`2026-01-01T00:00:00+20:00` used to pass the parsers and fail in the database as a 500
(`DataError`), and a saved rule holding one could never be previewed again (issue 12). So
every query parameter (`updated_since`, audit `since`/`until`, events `since`) and every
date in the rules is read here, and refused with a problem that says what to write:

- `not_a_date` — not an ISO 8601 date or date-time, an impossible one (month 13), or one
  that leaves the range of dates once moved to UTC (year 1 minus an offset);
- `bad_utc_offset` — an offset beyond ±15:59.

A date alone is midnight UTC; a date-time without an offset is UTC. In a query string an
unencoded `+` arrives as a space: `2026-01-01T09:00:00 01:00` reads as `+01:00`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime

from marketerapi.problems import ApplicationError

MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)
MOMENT_HINT = "Write an ISO 8601 date or date-time, e.g. 2026-11-01 or 2026-11-01T09:00:00Z (or +01:00)."
OFFSET_HINT = "Write a UTC offset from -15:59 to +15:59, e.g. 2026-11-01T09:00:00+01:00, or Z for UTC."

# A date-time whose offset lost its "+" to a query string's decoding.
_SPACE_FOR_PLUS = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?) (\d{2}(:?\d{2})?)$")
# The offset at the end of a date-time: ±HH, ±HHMM, ±HH:MM (seconds are not ISO 8601).
_OFFSET = re.compile(r"T?\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*([+-])(\d{2}):?(\d{2})?$")


class NotADate(ApplicationError):
    status = 400
    code = "not_a_date"
    title = "The value is not a date"
    hint = MOMENT_HINT


class BadUtcOffset(ApplicationError):
    status = 400
    code = "bad_utc_offset"
    title = "The UTC offset is out of range"
    hint = OFFSET_HINT


def moment_error(value: Any, *, field: str) -> ApplicationError | None:
    """The refusal `parse_moment` would raise for `value`, or None when it reads."""
    try:
        parse_moment(value, field=field)
    except (NotADate, BadUtcOffset) as error:
        return error
    return None


def parse_moment(value: Any, *, field: str, pointer: str | None = None) -> datetime:
    """`value` as an aware datetime, or NotADate / BadUtcOffset (400) naming `field`, each
    with one entry in `errors` (`pointer`, default the field as a query parameter)."""
    where = pointer if pointer is not None else f"?{field}"
    if isinstance(value, datetime):
        moment: datetime | None = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time.min, tzinfo=UTC)
    elif isinstance(value, str):
        text = _SPACE_FOR_PLUS.sub(r"\1+\4", value.strip())
        offset = _OFFSET.search(text)
        if offset is not None:
            sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3) or 0)
            if hours > 15 or minutes > 59:
                raise _bad_offset(field, where, value, f"{sign}{offset.group(2)}:{offset.group(3) or '00'}")
        try:
            moment = parse_datetime(text)
            if moment is None:
                day = parse_date(text)
                moment = datetime.combine(day, time.min, tzinfo=UTC) if day is not None else None
        except ValueError:  # well-formed but impossible: month 13, hour 25
            moment = None
    else:
        moment = None
    if moment is None:
        raise _not_a_date(field, where, value, "is not an ISO 8601 date or date-time")
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    shift = moment.utcoffset() or timedelta(0)
    if abs(shift) > MAX_UTC_OFFSET:
        raise _bad_offset(field, where, value, _offset_text(shift))
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise _not_a_date(field, where, value, "is outside the range of dates once moved to UTC") from None
    return moment


def _offset_text(shift: timedelta) -> str:
    minutes = int(shift.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _shown(value: Any) -> str:
    return repr(value if not isinstance(value, str) else value[:60])


def _not_a_date(field: str, pointer: str, value: Any, why: str) -> NotADate:
    message = f"{field}: {_shown(value)} {why}."
    return NotADate(
        message, errors=[{"pointer": pointer, "code": "not_a_date", "message": message, "hint": MOMENT_HINT}]
    )


def _bad_offset(field: str, pointer: str, value: Any, offset: str) -> BadUtcOffset:
    message = f"{field}: the UTC offset {offset} of {_shown(value)} is beyond ±15:59."
    return BadUtcOffset(
        message, errors=[{"pointer": pointer, "code": "bad_utc_offset", "message": message, "hint": OFFSET_HINT}]
    )
