"""Change windows: parsing, the next opening across weekends and daylight saving, and
which actions wait for them."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from governance.approvals import windows

WEEKDAYS = [{"days": [0, 1, 2, 3], "start": "09:00", "end": "17:00"}]


def env(change_windows=None, time_zone="Europe/London"):
    return SimpleNamespace(slug="production", time_zone=time_zone, change_windows=change_windows or [])


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2026, 3, 2, 10, 0), at(2026, 3, 2, 10, 0)),  # Monday 10:00: open now
        (at(2026, 3, 2, 8, 59), at(2026, 3, 2, 9, 0)),  # Monday before opening
        (at(2026, 3, 5, 17, 0), at(2026, 3, 9, 9, 0)),  # Thursday closing time: next Monday
        (at(2026, 3, 6, 12, 0), at(2026, 3, 9, 9, 0)),  # Friday: no window
        (at(2026, 3, 8, 23, 0), at(2026, 3, 9, 9, 0)),  # Sunday night
        # After the clocks go forward (29 March), 09:00 London is 08:00 UTC.
        (at(2026, 3, 27, 12, 0), at(2026, 3, 30, 8, 0)),
        (at(2026, 3, 30, 16, 30), at(2026, 3, 31, 8, 0)),  # 17:30 BST: closed until Tuesday
    ],
)
def test_next_opening_in_the_environments_time_zone(now, expected):
    assert windows.next_opening(env(WEEKDAYS), now) == expected


def test_no_windows_means_any_time():
    production = env([])
    assert windows.next_opening(production, at(2026, 3, 7, 3, 0)) is None
    assert windows.run_at(production, "audience.publish", at(2026, 3, 7, 3, 0)) is None
    assert windows.is_open(production, at(2026, 3, 7, 3, 0))


def test_only_publishes_and_activations_wait_for_a_window():
    assert {"audience.publish", "campaign.activate"} == windows.WINDOWED_ACTIONS
    friday = at(2026, 3, 6, 12, 0)
    assert windows.run_at(env(WEEKDAYS), "audience.publish", friday) == at(2026, 3, 9, 9, 0)
    assert windows.run_at(env(WEEKDAYS), "campaign.activate", friday) == at(2026, 3, 9, 9, 0)
    assert windows.run_at(env(WEEKDAYS), "audience.archive", friday) is None


def test_windows_until_midnight_and_several_per_day():
    spec = [
        {"days": [5], "start": "22:00", "end": "24:00"},
        {"days": [0], "start": "06:00", "end": "07:00"},
        {"days": [0], "start": "12:00", "end": "13:00"},
    ]
    utc = env(spec, "UTC")
    assert windows.next_opening(utc, at(2026, 3, 7, 23, 59)) == at(2026, 3, 7, 23, 59)  # Saturday night
    assert windows.next_opening(utc, at(2026, 3, 9, 7, 0)) == at(2026, 3, 9, 12, 0)
    assert windows.describe_windows(utc).startswith("Sat 22:00–24:00; Mon 06:00–07:00")


def test_describe_moment_uses_the_local_time():
    assert windows.describe_moment(env(WEEKDAYS), at(2026, 7, 6, 8, 0)) == "Mon 6 Jul 2026 09:00 Europe/London"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"days": [0]}, "must be a list"),
        ([{"days": [0], "start": "09:00"}], 'exactly "days", "start" and "end"'),
        ([{"days": [], "start": "09:00", "end": "17:00"}], "at least one"),
        ([{"days": [7], "start": "09:00", "end": "17:00"}], "weekdays 0–6"),
        ([{"days": [0], "start": "9am", "end": "17:00"}], "HH:MM"),
        ([{"days": [0], "start": "17:00", "end": "09:00"}], "split a window that crosses midnight"),
        ([{"days": [0], "start": "09:00", "end": "25:00"}], "not a time of day"),
    ],
)
def test_invalid_windows_are_refused_with_the_reason(value, message):
    with pytest.raises(ValidationError, match=message):
        windows.validate_change_windows(value)


def test_a_broken_value_fails_closed():
    broken = env([{"days": "weekdays"}])
    with pytest.raises(windows.ChangeWindowsBroken) as raised:
        windows.run_at(broken, "audience.publish", at(2026, 3, 2, 10, 0))
    assert raised.value.code == "change_windows_invalid" and raised.value.hint
