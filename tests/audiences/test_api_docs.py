"""docs/api.md tells the truth: its curl examples, run in order against a fresh sandbox as
the guide walks through them, answer what the guide shows (issue 11, item 12: the upsert
example showed `created 1, updated 1` where the sandbox answers `created 2`)."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# Values that differ from one run to the next: only their presence and type are checked.
VARYING = {"id", "created_at", "updated_at", "occurred_at", "request_id", "recorded_at"}


def blocks(text: str) -> list[tuple[str, str, str]]:
    """Every fenced block (language, body, the text before it since the previous block),
    indentation removed, in the order of the guide."""
    found, end = [], 0
    for match in re.finditer(r"^([ \t]*)```(\w*)\n(.*?)^\1```", text, re.S | re.M):
        found.append((match.group(2), textwrap.dedent(match.group(3)), text[end : match.start()]))
        end = match.end()
    return found


def curl(command: str) -> tuple[str, str, Any]:
    """(method, path with query, JSON body or None) of a curl command of the guide."""
    words = shlex.split(command.replace("\\\n", " "))
    method, body, url = "GET", None, ""
    for index, word in enumerate(words):
        if word == "-X":
            method = words[index + 1]
        elif word == "-d":
            body = json.loads(words[index + 1])
        elif word.startswith("https://"):
            url = word
    parts = urlsplit(url)
    return method, parts.path + (f"?{parts.query}" if parts.query else ""), body


def examples() -> list[tuple[str, str, Any, Any]]:
    """(method, path, body, expected answer) of each curl example followed by its answer."""
    found = []
    for (language, body, _), (next_language, answer, between) in itertools.pairwise(blocks(DOC.read_text())):
        # the answer is the next block of the same section
        if language == "sh" and body.lstrip().startswith("curl") and next_language == "json" and "\n#" not in between:
            method, path, payload = curl(body)
            found.append((method, path, payload, json.loads(answer)))
    return found


def matches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` differs from the guide's `expected` ("…" in a string: any text)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(expected) != set(actual):
            return [
                f"{path or '/'}: keys {sorted(expected)} != {sorted(actual) if isinstance(actual, dict) else actual}"
            ]
        return [
            problem
            for key in expected
            for problem in (
                []
                if key in VARYING and actual[key] is not None
                else matches(expected[key], actual[key], f"{path}/{key}")
            )
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(expected) != len(actual):
            return [f"{path}: {expected} != {actual}"]
        return [p for index, item in enumerate(expected) for p in matches(item, actual[index], f"{path}/{index}")]
    if isinstance(expected, str) and "…" in expected:
        return [] if isinstance(actual, str) else [f"{path}: {actual!r} is no text"]
    return [] if expected == actual else [f"{path}: {expected!r} != {actual!r}"]


def test_the_guide_has_examples_with_answers():
    paths = [path for _, path, _, _ in examples()]
    assert [p.split("?")[0] for p in paths] == [
        "/api/v1/profiles/bulk",
        "/api/v1/profiles/",
        "/api/v1/profile-events/bulk",
        "/api/v1/consent/sync",
    ]


def test_every_example_answers_what_the_guide_shows(api):
    client = api("developer")
    wrong = []
    for method, path, body, expected in examples():
        response = client.generic(method, path, json.dumps(body) if body is not None else "", "application/json")
        wrong += [f"{method} {path}: {problem}" for problem in matches(expected, response.json())]
    assert wrong == []


def test_the_consent_event_of_the_guide_is_the_one_emitted(api):
    client = api("developer")
    for method, path, body, _ in examples():
        client.generic(method, path, json.dumps(body) if body is not None else "", "application/json")
    shown = next(
        json.loads(body)
        for language, body, _ in blocks(DOC.read_text())
        if language == "json" and "consent.updated" in body
    )

    emitted = client.get("/api/v1/events/?type=consent.updated").json()["results"]

    assert len(emitted) == 1
    assert matches(shown, emitted[0]) == []
