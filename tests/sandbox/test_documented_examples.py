"""Every rule example of the guides finds people in a freshly reset sandbox, and names only
custom attributes, events and properties the sandbox's data has (issue 11, item 4: the
guide's `total` on `purchase` matched nobody). The scenario rules are checked, with their
exact figures, by test_scenarios.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audiences.catalogue.selectors import unknown_names
from audiences.reach import compute_preview
from audiences.rules import NODE_KEYS, validate
from governance.actors import Actor
from governance.models import Door
from sandbox.scenarios import SCENARIOS
from sandbox.services import sandbox_reset

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _examples() -> list[tuple[str, dict]]:
    sources = {
        "audiences.md": _section((DOCS / "audiences.md").read_text(), "## Writing rules"),
        "sandbox.md": (DOCS / "sandbox.md").read_text(),
    }
    scenario_rules = [s.expected["rules"] for s in SCENARIOS]
    found: list[tuple[str, dict]] = []
    for name, text in sources.items():
        snippets = re.findall(r"```json\n(.*?)```", text, re.S) + re.findall(r"`(\{[^`]*?\})`", text, re.S)
        for snippet in snippets:
            if "…" in snippet:
                continue
            try:
                rule = json.loads(snippet)
            except json.JSONDecodeError:
                continue
            if not isinstance(rule, dict) or not any(key in rule for key in NODE_KEYS):
                continue  # a profile's attributes, an answer
            if "in_audience" in json.dumps(rule) or rule in scenario_rules:
                continue  # ids of someone's audiences; the scenarios have their own test
            found.append((name, rule))
    return found


EXAMPLES = _examples()


def test_the_guides_have_examples_to_run():
    assert len(EXAMPLES) > 20
    assert any("where" in json.dumps(rule) for _, rule in EXAMPLES)


@pytest.fixture
def loaded(sandbox):
    sandbox_reset(
        actor=Actor.system(sandbox, door=Door.CLI),
        environment=sandbox,
        profiles=2000,
        seed=7,
        anchor=datetime.now(UTC).date(),
    )
    return sandbox


def test_every_rule_example_of_the_guides_finds_people_in_the_sandbox(loaded):
    wrong = []
    for source, rule in EXAMPLES:
        assert validate(rule).valid, (source, rule)
        warnings = unknown_names(loaded, rule)
        count = compute_preview(environment=loaded, rules=rule, channel="email")["count"]
        if warnings or not count:
            wrong.append((source, rule, count, [w["message"] for w in warnings]))
    assert wrong == []
