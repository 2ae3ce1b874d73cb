"""Reads of the catalogue: what the builder offers, and the did-you-mean warnings of preview
and validate for custom attributes, event types and event properties nobody has.

A name the catalogue does not know is a WARNING, never an error: the key may simply be new
(the first profiles carrying it arrive tomorrow). Each warning has a pointer into the
request (`/rules/all/0/attr`) and the nearest known names.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from typing import Any

from django.db.models import Q

from audiences.models import VALUE_TYPE_BITS, CatalogueEntry, CatalogueKind
from audiences.rules import NameUse, names_used, rules_pointer
from governance.models import Environment

# What the builder lists at most, the most frequent first; a preview's did-you-mean compares
# with at most this many names of a kind.
BUILDER_LIMIT = 500
CANDIDATES_LIMIT = 5000
SHOWN_CANDIDATES = 8


def _types(bits: int) -> list[str]:
    return [name for name, bit in VALUE_TYPE_BITS.items() if bits & bit]


def builder_catalogue(environment: Environment) -> dict[str, Any]:
    """What the rule builder offers: the custom attribute keys (with the JSON types seen and
    how often), the event types, and the properties of each event type, the most frequent
    first. Three small queries, each capped."""
    entries = CatalogueEntry.objects.filter(environment=environment).order_by("-seen_count", "key")
    fields = ("event_type", "key", "value_types", "seen_count")

    def listed(kind: str, limit: int, **more: Any) -> list[tuple[str, str, int, int]]:
        return list(entries.filter(kind=kind, **more).values_list(*fields)[:limit])

    attributes = [
        {"key": key, "types": _types(bits), "seen": seen}
        for _, key, bits, seen in listed(CatalogueKind.ATTRIBUTE, BUILDER_LIMIT)
    ]
    events = [(key, seen) for _, key, _, seen in listed(CatalogueKind.EVENT, BUILDER_LIMIT)]
    properties: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if events:
        for event_type, key, bits, seen in listed(
            CatalogueKind.EVENT_PROPERTY, CANDIDATES_LIMIT, event_type__in=[key for key, _ in events]
        ):
            properties[event_type].append({"key": key, "types": _types(bits), "seen": seen})
    return {
        "custom_attributes": attributes,
        "event_types": [{"key": key, "seen": seen, "properties": properties.get(key, [])} for key, seen in events],
    }


_WHAT = {
    CatalogueKind.ATTRIBUTE: ("custom attribute", "custom attributes"),
    CatalogueKind.EVENT: ("event type", "event types"),
    CatalogueKind.EVENT_PROPERTY: ("event property", "properties"),
}
CODES = {
    CatalogueKind.ATTRIBUTE: "unknown_custom_attribute",
    CatalogueKind.EVENT: "unknown_event_type",
    CatalogueKind.EVENT_PROPERTY: "unknown_event_property",
}


def _nearest(name: str, candidates: list[str]) -> list[str]:
    """The closest known names: a spelling that differs only in case first, then difflib's."""
    same = [c for c in candidates if c.lower() == name.lower()]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    return list(dict.fromkeys([*same, *close]))[:3]


def _message(use: NameUse, environment: Environment, nearest: list[str]) -> str:
    if use.kind == CatalogueKind.ATTRIBUTE:
        text = f"No profile in {environment.slug} has the custom attribute {use.key!r}"
    elif use.kind == CatalogueKind.EVENT:
        text = f"No profile event of type {use.key!r} has been received in {environment.slug}"
    else:
        text = f"No {use.event_type!r} event received in {environment.slug} has the property {use.key!r}"
    text += (" — did you mean " + " or ".join(repr(n) for n in nearest) + "?") if nearest else "."
    return text + " The condition matches nobody."


def _hint(use: NameUse, environment: Environment, candidates: list[str]) -> str:
    one, many = _WHAT[CatalogueKind(use.kind)]
    if candidates:
        shown = ", ".join(candidates[:SHOWN_CANDIDATES]) + (", …" if len(candidates) > SHOWN_CANDIDATES else "")
        known = f"Known {many}{' of ' + repr(use.event_type) + ' events' if use.event_type else ''}: {shown}."
    elif use.event_type:
        known = f"No {use.event_type!r} event received in {environment.slug} had properties."
    else:
        known = f"Nothing in {environment.slug} has carried {'an' if one[0] in 'aeiou' else 'a'} {one} yet."
    return (
        f"Check the spelling (names are case-sensitive). {known} If the name is new and your systems will send it, "
        "keep the condition: it matches as soon as the data arrives."
    )


def unknown_names(environment: Environment, rules: Any, *, prefix: str = "/rules") -> list[dict[str, str]]:
    """A warning for each custom attribute, event type and event property of `rules` (valid
    rules) that the environment's catalogue has never seen, with the nearest known names.
    No query when the rules use none; one to look them up; one more for candidates when
    some are unknown."""
    uses = names_used(rules)
    if not uses:
        return []
    entries = CatalogueEntry.objects.filter(environment=environment)
    wanted = Q()
    for use in uses:
        wanted |= Q(kind=use.kind, event_type=use.event_type, key=use.key)
    known = set(entries.filter(wanted).values_list("kind", "event_type", "key"))
    unknown = [use for use in uses if (use.kind, use.event_type, use.key) not in known]
    if not unknown:
        return []
    # Candidates of the kinds (and event types) in question, the most frequent first.
    scope = Q()
    for use in unknown:
        scope |= Q(kind=use.kind, event_type=use.event_type)
    candidates: dict[tuple[str, str], list[str]] = defaultdict(list)
    for kind, event_type, key in (
        entries.filter(scope).order_by("-seen_count", "key").values_list("kind", "event_type", "key")[:CANDIDATES_LIMIT]
    ):
        candidates[(kind, event_type)].append(key)
    warnings = []
    for use in unknown:
        names = candidates.get((use.kind, use.event_type), [])
        warnings.append(
            {
                "code": CODES[CatalogueKind(use.kind)],
                "pointer": rules_pointer(use.pointer, prefix),
                "message": _message(use, environment, _nearest(use.key, names)),
                "hint": _hint(use, environment, names),
            }
        )
    return warnings
