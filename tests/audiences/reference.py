"""A reference evaluator of the rules language in plain Python, for differential tests.

It states the semantics the SQL compiler must match, profile by profile: comparisons
with a missing value are false, `neq`/`not_in` hold for missing values, `contains` is
case-insensitive text containment, `not` is two-valued negation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from audiences.rules import CUSTOM_PREFIX, _parse_when

MISSING = object()


@dataclass
class World:
    now: datetime
    consents: dict[int, dict[str, str]] = field(default_factory=dict)  # profile id → channel → status
    events: dict[int, list[tuple[str, datetime, dict[str, Any]]]] = field(default_factory=dict)
    members: dict[int, set[int]] = field(default_factory=dict)  # audience id → live member profile ids


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _value(profile: Any, name: str) -> Any:
    if name.startswith(CUSTOM_PREFIX):
        value = profile.attributes.get(name[len(CUSTOM_PREFIX) :], MISSING)
        return MISSING if value is None else value
    value = getattr(profile, name)
    return MISSING if value is None else value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def compare(value: Any, op: str, operand: Any) -> bool:
    if op == "is_null":
        return (value is MISSING) == bool(operand)
    if op == "neq":
        return value is MISSING or not _same(value, operand)
    if op == "not_in":
        return value is MISSING or not any(_same(value, item) for item in operand)
    if value is MISSING:
        return False
    if op == "eq":
        return _same(value, operand)
    if op == "in":
        return any(_same(value, item) for item in operand)
    if op == "contains":
        return str(operand).lower() in _text(value).lower()
    if op == "starts_with":
        return _text(value).lower().startswith(str(operand).lower())
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if op in ("gt", "gte", "lt", "lte", "between") and not numeric:
        return False
    if op == "gt":
        return value > operand
    if op == "gte":
        return value >= operand
    if op == "lt":
        return value < operand
    if op == "lte":
        return value <= operand
    if op == "between":
        return operand[0] <= value <= operand[1]
    raise ValueError(op)


def _when(value: Any, op: str, operand: Any, now: datetime) -> bool:
    if op == "is_null":
        return (value is MISSING) == bool(operand)
    if value is MISSING:
        return False
    if op == "before":
        return value < _parse_when(operand)
    if op == "after":
        return value > _parse_when(operand)
    if op == "between":
        return _parse_when(operand[0]) <= value <= _parse_when(operand[1])
    if op == "within_days":
        return value >= now - timedelta(days=operand)
    raise ValueError(op)


def evaluate(rule: dict[str, Any], profile: Any, world: World) -> bool:
    if "all" in rule:
        return all(evaluate(child, profile, world) for child in rule["all"])
    if "any" in rule:
        return any(evaluate(child, profile, world) for child in rule["any"])
    if "not" in rule:
        return not evaluate(rule["not"], profile, world)
    if "attr" in rule:
        value = _value(profile, rule["attr"])
        if rule["attr"] in ("created_at", "updated_at"):
            return _when(value, rule["op"], rule.get("value", True), world.now)
        return compare(value, rule["op"], rule.get("value", True))
    if "consent" in rule:
        granted = world.consents.get(profile.pk, {}).get(rule["consent"]) == "granted"
        return granted if rule.get("is", True) else not granted
    if "event" in rule:
        count = 0
        for kind, when, props in world.events.get(profile.pk, []):
            if kind != rule["event"]:
                continue
            if rule.get("within_days") and when < world.now - timedelta(days=rule["within_days"]):
                continue
            if all(
                compare(
                    props.get(f["property"], MISSING) if props.get(f["property"]) is not None else MISSING,
                    f["op"],
                    f["value"],
                )
                for f in rule.get("where", [])
            ):
                count += 1
        return count >= rule.get("min_count", 1)
    if "in_audience" in rule:
        return profile.pk in world.members.get(rule["in_audience"], set())
    raise ValueError(rule)
