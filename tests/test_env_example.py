"""`.env.example` lists every variable settings.py reads (STYLE.md, "Settings")."""

from __future__ import annotations

import re

from tests.processes import ROOT, settings_variables


def documented_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    # `NAME=value` or the commented default `# NAME=value`
    return set(re.findall(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_the_settings_reader_finds_the_variables():
    # A guard for the guard: if the pattern stopped matching, the next test would pass vacuously.
    names = settings_variables()
    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CONN_MAX_AGE"} <= set(names)


def test_every_variable_settings_reads_is_in_env_example():
    missing = [name for name in settings_variables() if name not in documented_variables()]

    assert not missing, f"Add these to .env.example with their default and meaning: {', '.join(missing)}"


def test_each_variable_in_env_example_has_an_explanation_above_it():
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=", line)
        if match and match.group(1) in settings_variables():
            above = lines[index - 1]
            assert above.startswith("#") and not re.match(r"^#\s*[A-Z][A-Z0-9_]*=", above), (
                f"{match.group(1)} in .env.example needs a comment line saying what it means"
            )
