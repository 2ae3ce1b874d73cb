"""docs/audiences.md tells the truth: every operator the rules language has is documented
with an example, every example is valid rules, every error code the validator can give
is named, and every validate check is explained."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from audiences import rules
from audiences.rules import OPERATORS, validate

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "audiences.md").read_text()


def _section(title: str) -> str:
    start = DOC.index(title)
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else None]


def test_every_operator_has_a_row_with_an_example():
    table = _section("Every operator, with an example")
    first_cells = re.findall(r"^\| ([^|]+) \|", table, re.M)
    documented = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    every = {op for ops in OPERATORS.values() for op in ops}
    assert every <= documented, sorted(every - documented)


def _json_snippets(text: str) -> list[str]:
    # Schematic snippets ("{"all": [ … ]}") are shapes, not rules.
    return [m for m in re.findall(r"`(\{.*?\})`", text) if '"' in m and "…" not in m]


@pytest.mark.parametrize("example", _json_snippets(_section("## Writing rules")))
def test_every_rule_example_in_the_guide_is_valid(example):
    data = json.loads(example)
    if not any(key in data for key in ("all", "any", "not", "attr", "consent", "event", "in_audience")):
        pytest.skip("not a rule")
    if "property" in json.dumps(data) and "event" not in data:
        pytest.skip("a property filter, shown inside an event")
    result = validate(data)
    assert result.valid, [p.as_dict() for p in result.problems]


def test_the_big_example_is_valid():
    block = re.search(r"They nest:\n\n```json\n(.*?)```", DOC, re.S)
    assert block
    assert validate(json.loads(block.group(1))).valid


def _validator_codes() -> set[str]:
    tree = ast.parse((ROOT / "audiences" / "rules.py").read_text())
    codes: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add"
            and len(node.args) >= 2
        ):
            code = node.args[1]
            for leaf in (code.body, code.orelse) if isinstance(code, ast.IfExp) else (code,):
                if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                    codes.add(leaf.value)
    return codes


def test_every_error_code_of_the_validator_is_named():
    codes = _validator_codes() | {"audience_archived"}
    assert len(codes) > 20
    missing = sorted(code for code in codes if f"`{code}`" not in DOC)
    assert not missing, missing


@pytest.mark.parametrize(
    "check", ["schema", "required_metadata", "consent", "regional_restrictions", "suppression_overlap", "size"]
)
def test_every_validate_check_is_explained(check):
    assert re.search(rf"^\| `{check}` \|", _section("## Validate"), re.M)


def test_the_documented_limits_are_the_real_ones():
    limits = _section("### Limits")
    assert f"| {rules.MAX_DEPTH} levels |" in limits
    assert f"| {rules.MAX_CONDITIONS} |" in limits
    assert f"| {rules.MAX_LIST:,} |" in limits
    assert f"1 to {rules.MAX_WITHIN_DAYS:,}" in limits


def test_the_waterfall_steps_are_the_previews():
    from audiences.reach import STEPS

    section = _section("## Preview and the reach waterfall")
    for step in (*STEPS, "reachable"):
        assert f"**{step}**" in section, step
