"""Change windows: the hours in which production changes may run (PRODUCT.md §5).

An environment's `change_windows` is a list such as
`[{"days": [0, 1, 2, 3], "start": "09:00", "end": "17:00"}]` (0 = Monday), read in the
environment's `time_zone`; an empty list means any time. Only the actions in
`WINDOWED_ACTIONS` wait for a window: publishes and activations reach customers, the
other approved actions (archive, suppression changes, exports, flags) run at once.

`run_at(environment, action, now)` answers when an approved action may run: `None` for
now, or the next opening. Domain services that publish or activate without needing an
approval ask the same function, so one rule holds for both paths.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError

from marketerapi.problems import ApplicationError

logger = logging.getLogger(__name__)

# The one place that says which actions wait for a change window.
WINDOWED_ACTIONS: frozenset[str] = frozenset({"audience.publish", "campaign.activate"})

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MINUTES_PER_DAY = 24 * 60


class InvalidChangeWindows(ValueError):
    """An environment's change_windows value does not have the documented shape."""


@dataclass(frozen=True)
class ChangeWindow:
    days: frozenset[int]
    start: int  # minutes after midnight, 0–1439
    end: int  # minutes after midnight, start < end ≤ 1440 ("24:00")

    def describe(self) -> str:
        days = ", ".join(DAY_NAMES[d] for d in sorted(self.days))
        return f"{days} {_hhmm(self.start)}–{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_clock(value: Any, where: str) -> int:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise InvalidChangeWindows(f'{where} must be a time written HH:MM, e.g. "09:00"; got {value!r}.')
    try:
        hours, minutes = int(value[:2]), int(value[3:])
    except ValueError:
        raise InvalidChangeWindows(f"{where} must be a time written HH:MM; got {value!r}.") from None
    total = hours * 60 + minutes
    if minutes > 59 or total > MINUTES_PER_DAY:
        raise InvalidChangeWindows(f"{where} {value!r} is not a time of day (00:00–24:00).")
    return total


def parse_windows(raw: Any) -> list[ChangeWindow]:
    """Parse and check a change_windows value; raise InvalidChangeWindows naming the problem."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise InvalidChangeWindows("change_windows must be a list of windows (or empty for any time).")
    windows = []
    for index, item in enumerate(raw):
        where = f"window {index + 1}"
        if not isinstance(item, dict) or set(item) != {"days", "start", "end"}:
            raise InvalidChangeWindows(f'{where} must be an object with exactly "days", "start" and "end".')
        days = item["days"]
        if (
            not isinstance(days, list)
            or not days
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
        ):
            raise InvalidChangeWindows(f'{where}: "days" must list weekdays 0–6 (0 = Monday), at least one.')
        start = _parse_clock(item["start"], f'{where}: "start"')
        end = _parse_clock(item["end"], f'{where}: "end"')
        if start >= MINUTES_PER_DAY or end <= start:
            raise InvalidChangeWindows(
                f"{where}: the window must end after it starts on the same day; split a window that crosses "
                'midnight in two (e.g. "22:00"–"24:00" and "00:00"–"02:00").'
            )
        windows.append(ChangeWindow(frozenset(days), start, end))
    return windows


def validate_change_windows(value: Any) -> None:
    """For model and admin form validation: raise Django's ValidationError."""
    try:
        parse_windows(value)
    except InvalidChangeWindows as exc:
        raise ValidationError(str(exc), code="invalid_change_windows") from None


def zone_of(environment: Any) -> ZoneInfo:
    try:
        return ZoneInfo(environment.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("environment %s has an unknown time zone %r; using UTC", environment, environment.time_zone)
        return ZoneInfo("UTC")


class ChangeWindowsBroken(ApplicationError):
    status = 409
    code = "change_windows_invalid"
    title = "The environment's change windows are not valid"
    hint = "Ask an admin to fix the environment's change windows in the admin site; nothing ran meanwhile."


def windows_of(environment: Any) -> list[ChangeWindow]:
    try:
        return parse_windows(environment.change_windows)
    except InvalidChangeWindows as exc:
        # Fail closed: a value the admin form would have refused (a raw edit) must neither
        # let a windowed change run at any time nor be silently read as "any time".
        logger.error("environment %s has invalid change_windows %r", environment, environment.change_windows)
        raise ChangeWindowsBroken(f"{environment}: {exc}") from None


def _bounds(day: date, window: ChangeWindow, zone: ZoneInfo) -> tuple[datetime, datetime]:
    # Build each bound from the wall clock and convert it to UTC, so a window keeps its
    # local hours across daylight-saving changes.
    start = datetime.combine(day, time(window.start // 60, window.start % 60), tzinfo=zone)
    if window.end == MINUTES_PER_DAY:
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    else:
        end = datetime.combine(day, time(window.end // 60, window.end % 60), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def is_open(environment: Any, at: datetime) -> bool:
    """Is a change window open at `at`? True when the environment has no windows."""
    opening = next_opening(environment, at)
    return opening is None or opening == at


def next_opening(environment: Any, after: datetime) -> datetime | None:
    """`after` itself when a window is open then (or there are no windows: None means
    "any time"), otherwise the start of the next window."""
    windows = windows_of(environment)
    if not windows:
        return None
    zone = zone_of(environment)
    local_day = after.astimezone(zone).date()
    best: datetime | None = None
    # Every window lies within one local day, so today and the next seven days hold the
    # next opening.
    for offset in range(8):
        day = local_day + timedelta(days=offset)
        for window in windows:
            if day.weekday() not in window.days:
                continue
            start, end = _bounds(day, window, zone)
            if start <= after < end:
                return after
            if start > after and (best is None or start < best):
                best = start
    return best


def run_at(environment: Any, action: str, now: datetime) -> datetime | None:
    """When may `action` run in `environment`? None: now. Otherwise the next opening."""
    if action not in WINDOWED_ACTIONS:
        return None
    opening = next_opening(environment, now)
    if opening is None or opening <= now:
        return None
    return opening


def describe_moment(environment: Any, when: datetime) -> str:
    """'Mon 5 Jan 2026 09:00 Europe/London' — in the environment's own time zone."""
    zone = zone_of(environment)
    local = when.astimezone(zone)
    return f"{DAY_NAMES[local.weekday()]} {local.day} {local:%b %Y %H:%M} {zone.key}"


def describe_windows(environment: Any) -> str:
    windows = windows_of(environment)
    if not windows:
        return "any time"
    return "; ".join(w.describe() for w in windows) + f" ({zone_of(environment).key})"
