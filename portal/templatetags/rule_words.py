"""Where a problem is, in a marketer's words: a JSON pointer such as `/rules/all/1/event`
becomes "Condition 2 (event type)", `/rules/all/0/any/2/value` "Condition 3 of group 1
(value)", `/name` "Name". The API keeps the pointers; the portal shows these words (and
keeps the pointer in a `data-pointer` attribute for the builder and for support).

The numbering is the rule builder's (portal/static/portal/builder.js): the conditions and
groups of the top level are 1, 2, 3…; inside group 3 they are 3.1, 3.2…; a negation keeps
the number of what it negates. In templates: `{% load rule_words %}` then
`{{ error.pointer|pointer_words }}`, or `{{ error.pointer|pointer_words:rules }}` to tell
a group from a condition when the pointer ends at the node itself.
"""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()

GROUP_KEYS = ("all", "any")

# A condition's fields, as the builder labels them.
FIELD_WORDS = {
    "attr": "attribute",
    "op": "operator",
    "value": "value",
    "event": "event type",
    "within_days": "within (days)",
    "min_count": "at least (times)",
    "where": "property filters",
    "property": "property",
    "consent": "consent channel",
    "is": "granted or not",
    "in_audience": "audience",
}

# The audience's own fields (and the other forms' fields the portal points at).
TOP_WORDS = {
    "name": "Name",
    "owner_team": "Owner team",
    "team": "Team",
    "channel": "Channel",
    "purpose": "Purpose",
    "description": "Description",
    "rules": "Rules",
    "environment": "Environment",
    "version": "Version",
    "comment": "Comment",
}


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _kind_at(rules: Any, path: list[str]) -> str | None:
    """The kind of the node the path segments lead to: "group", "condition" or None (unknown)."""
    node = rules
    for segment in path:
        if isinstance(node, dict):
            node = node.get(segment)
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return None
    while isinstance(node, dict) and "not" in node and len(node) == 1:
        node = node["not"]
    if isinstance(node, dict):
        return "group" if set(GROUP_KEYS) & set(node) else "condition"
    return None


def _field_words(rest: list[str]) -> str:
    """The part of a condition the pointer ends in: "value", "property filter 2 (value)"."""
    if not rest:
        return ""
    if rest[0] == "where" and len(rest) >= 2 and rest[1].isdigit():
        inner = _field_words(rest[2:])
        return f"property filter {int(rest[1]) + 1}" + (f", {inner}" if inner else "")
    words = FIELD_WORDS.get(rest[0], rest[0].replace("_", " "))
    if len(rest) >= 2 and rest[1].isdigit():
        words += f" {int(rest[1]) + 1}"
    return words


def rule_position(pointer: str, rules: Any = None) -> str:
    """A pointer into the rules (without its `/rules` prefix, e.g. `/all/1/event`) in words."""
    segments = [_unescape(s) for s in pointer.split("/")[1:]] if pointer else []
    numbers: list[int] = []
    walked: list[str] = []
    i = 0
    rest: list[str] = []
    while i < len(segments):
        segment = segments[i]
        if segment in GROUP_KEYS and i + 1 < len(segments) and segments[i + 1].isdigit():
            numbers.append(int(segments[i + 1]) + 1)
            walked += segments[i : i + 2]
            i += 2
        elif segment == "not":
            walked.append(segment)
            i += 1
        else:
            rest = segments[i:]
            break
    if rest and rest[0] in GROUP_KEYS:
        kind = "group"
        rest = []  # the group's own list ("this group is empty")
    elif rest:
        kind = "condition"
    else:
        kind = _kind_at(rules, walked) or ("group" if not numbers else "condition")
    if not numbers:
        # The top of the rules: everything, or the one condition the rules are.
        head = "The rules" if kind == "group" else "Condition 1"
    else:
        own = numbers[-1]
        parents = ".".join(str(n) for n in numbers[:-1])
        head = f"{kind.capitalize()} {own}" + (f" of group {parents}" if parents else "")
    field = _field_words(rest)
    return f"{head} ({field})" if field else head


@register.filter
def pointer_words(pointer: Any, rules: Any = None) -> str:
    """A JSON pointer of a problem as a marketer reads it ("" for the whole request)."""
    text = str(pointer or "")
    if not text or text == "/":
        return ""
    if text == "/rules" or text.startswith("/rules/"):
        return rule_position(text.removeprefix("/rules"), rules)
    segments = [_unescape(s) for s in text.split("/")[1:]]
    first = TOP_WORDS.get(segments[0], segments[0].replace("_", " ").capitalize())
    more = [s if not s.isdigit() else str(int(s) + 1) for s in segments[1:]]
    return " ".join([first, *more])
