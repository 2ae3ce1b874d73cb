"""docs/errors.md lists every problem code the code can raise (marketerapi/catalogue.py):
a new code without an entry fails here."""

from __future__ import annotations

from django.core.management import call_command

from marketerapi.catalogue import build


def test_the_error_catalogue_is_current():
    # Fails with the command to run when a code was added, removed or reworded.
    call_command("error_catalogue", "--check")


def test_every_problem_code_has_a_status_a_title_and_a_hint():
    entries = build()

    assert len(entries) > 50
    for entry in entries.values():
        assert 400 <= entry.status <= 599, entry.code
        assert entry.title and entry.hint, entry.code
        assert entry.code == entry.code.lower() and " " not in entry.code, entry.code
