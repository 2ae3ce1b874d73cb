"""The audience rules language: validate a JSON rule tree and compile it to one SQL query.

A rule is one of:

    {"all": [rule, ...]}                      every rule holds
    {"any": [rule, ...]}                      at least one holds
    {"not": rule}                             the rule does not hold
    {"attr": name, "op": op, "value": v}      a profile attribute (or attributes.<key>)
    {"consent": channel, "is": true|false}    consent granted on a channel (false: not granted)
    {"event": type, "within_days": n, "min_count": k, "where": [{"property", "op", "value"}]}
    {"in_audience": id}                       a member of another audience's live version

`validate()` reports every problem at once, each with a JSON pointer, a code and a hint;
`rules_check()` validates in one environment (its `in_audience` references resolve there
only) with pointers into the request (`/rules/all/2/attr`), and `rules_check_or_raise()`
refuses invalid rules with 422 `invalid_rules`: what every door and service checks with.
`compile_rules()` turns a valid tree into a `Q` over Profile: attribute tests become
column predicates, consent and events become correlated `EXISTS` subqueries over their
(profile, …) indexes, so the whole audience is one query evaluated by the database —
never row by row in Python. (An event test under `any` compiled as `id IN (subquery)`
is planned as a re-scan per profile on PostgreSQL; a correlated EXISTS is not.)

Null semantics, relied on by the reference evaluator in the tests: comparisons with a
missing value are false; `neq` and `not_in` hold for missing values; `not` is plain
two-valued negation.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Case, CharField, Count, Exists, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce, Lower, StrIndex, Substr
from django.db.models.lookups import Contains, Exact, GreaterThanOrEqual, In, StartsWith
from django.utils import timezone

from audiences.models import Audience, AudienceState, Channel, ConsentStatus, LifecycleStage, ProfileEvent, Region
from marketerapi.moments import BadUtcOffset, NotADate, moment_error, parse_moment
from marketerapi.problems import ApplicationError

if TYPE_CHECKING:
    from governance.models import Environment

MAX_DEPTH = 8
MAX_CONDITIONS = 100
MAX_LIST = 1000
MAX_WITHIN_DAYS = 3650

STRING, ENUM, DATETIME, JSON = "string", "enum", "datetime", "json"

OPERATORS: dict[str, tuple[str, ...]] = {
    STRING: ("eq", "neq", "in", "not_in", "contains", "starts_with", "is_null"),
    ENUM: ("eq", "neq", "in", "not_in", "is_null"),
    DATETIME: ("before", "after", "between", "within_days", "is_null"),
    JSON: ("eq", "neq", "in", "not_in", "contains", "gt", "gte", "lt", "lte", "between", "is_null"),
}
EVENT_PROPERTY_OPERATORS = ("eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "contains")

# name → (type, allowed values for enums)
ATTRIBUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "external_id": (STRING, ()),
    "email": (STRING, ()),
    # The part of the email address after the "@", lower-cased, computed in SQL: not
    # personal data, so every role may filter on it (PRODUCT.md §4).
    "email_domain": (STRING, ()),
    "phone": (STRING, ()),
    "push_token": (STRING, ()),
    "first_name": (STRING, ()),
    "last_name": (STRING, ()),
    "locale": (STRING, ()),
    "country": (STRING, ()),
    "region": (ENUM, tuple(Region.values)),
    "lifecycle_stage": (ENUM, tuple(LifecycleStage.values)),
    "created_at": (DATETIME, ()),
    "updated_at": (DATETIME, ()),
}
# Personal data among the profile attributes: a role that may not see it (every role but
# compliance_reviewer: `profile.view_pii`) may test only whether it is there (the presence
# operators), never its value — a value test answers "does Ann's phone start with +4477…"
# one count at a time (issue 12). Custom attributes and event properties marked `pii` in
# the catalogue follow the same rule (audiences/profiles/pii_filters.py).
PII_ATTRIBUTES: frozenset[str] = frozenset({"email", "phone", "first_name", "last_name", "push_token"})
PRESENCE_OPERATORS: frozenset[str] = frozenset({"is_null"})
CUSTOM_PREFIX = "attributes."
_CUSTOM_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
NODE_KEYS = ("all", "any", "not", "attr", "consent", "event", "in_audience")


@dataclass(frozen=True)
class Problem:
    pointer: str
    code: str
    message: str
    hint: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "code": self.code, "message": self.message, "hint": self.hint}


@dataclass
class Validation:
    problems: list[Problem] = field(default_factory=list)
    audience_ids: set[int] = field(default_factory=set)
    conditions: int = 0

    @property
    def valid(self) -> bool:
        return not self.problems

    def add(self, pointer: str, code: str, message: str, hint: str) -> None:
        self.problems.append(Problem(pointer or "/", code, message, hint))


def _ptr(base: str, *parts: Any) -> str:
    return base + "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" — did you mean {close[0]!r}?" if close else ""


def attribute_type(name: str) -> tuple[str, tuple[str, ...]] | None:
    if name in ATTRIBUTES:
        return ATTRIBUTES[name]
    if name.startswith(CUSTOM_PREFIX) and _CUSTOM_KEY.match(name[len(CUSTOM_PREFIX) :]):
        return (JSON, ())
    return None


def validate(rules: Any, *, audience_lookup: Any = None, self_id: int | None = None) -> Validation:
    """Check a rule tree; every problem is reported at once.

    `audience_lookup(ids) -> {id: (environment_ok, rules)}` resolves `in_audience`
    references (same environment, no cycle); without it they are only checked for shape.
    """
    result = Validation()
    if not isinstance(rules, dict) or not rules:
        result.add(
            "/",
            "rules_not_object",
            'The rules must be a JSON object such as {"all": [...]}.',
            'Start with {"all": []} and add conditions to the list.',
        )
        return result
    _check_node(rules, "", 1, result)
    if result.conditions > MAX_CONDITIONS:
        result.add(
            "/",
            "too_many_conditions",
            f"The rules have {result.conditions} conditions; the limit is {MAX_CONDITIONS}.",
            "Split the audience in two and combine them with in_audience.",
        )
    if audience_lookup is not None and result.audience_ids:
        _check_references(rules, result, audience_lookup, self_id)
    return result


def _check_node(node: Any, pointer: str, depth: int, result: Validation) -> None:
    if depth > MAX_DEPTH:
        result.add(
            pointer,
            "too_deep",
            f"The rules nest deeper than {MAX_DEPTH} levels.",
            "Flatten nested all/any groups; all inside all can be merged.",
        )
        return
    if not isinstance(node, dict):
        result.add(
            pointer,
            "not_a_condition",
            "Each condition must be a JSON object.",
            'Use e.g. {"attr": "region", "op": "eq", "value": "EU"}.',
        )
        return
    kinds = [k for k in NODE_KEYS if k in node]
    if len(kinds) != 1:
        keys = ", ".join(sorted(map(str, node))) or "nothing"
        result.add(
            pointer,
            "unknown_condition" if not kinds else "ambiguous_condition",
            f"A condition needs exactly one of {', '.join(NODE_KEYS)}; this one has {keys}.",
            f"Use one of: {', '.join(NODE_KEYS)}{_did_you_mean(str(next(iter(node), '')), list(NODE_KEYS))}",
        )
        return
    kind = kinds[0]
    if kind in ("all", "any"):
        _allow_keys(node, {kind}, pointer, result)
        children = node[kind]
        if not isinstance(children, list):
            result.add(
                _ptr(pointer, kind),
                "not_a_list",
                f"{kind!r} takes a list of conditions.",
                f'Write {{"{kind}": [ ... ]}}.',
            )
            return
        if not children and depth > 1:
            result.add(
                _ptr(pointer, kind),
                "empty_group",
                f"This {kind!r} group is empty.",
                "Add a condition or remove the group.",
            )
        for index, child in enumerate(children):
            _check_node(child, _ptr(pointer, kind, index), depth + 1, result)
    elif kind == "not":
        _allow_keys(node, {"not"}, pointer, result)
        _check_node(node["not"], _ptr(pointer, "not"), depth + 1, result)
    elif kind == "attr":
        result.conditions += 1
        _check_attr(node, pointer, result)
    elif kind == "consent":
        result.conditions += 1
        _allow_keys(node, {"consent", "is"}, pointer, result)
        if node["consent"] not in Channel.values:
            result.add(
                _ptr(pointer, "consent"),
                "unknown_channel",
                f"{node['consent']!r} is not a channel.",
                f"Use one of: {', '.join(Channel.values)}{_did_you_mean(str(node['consent']), list(Channel.values))}",
            )
        if not isinstance(node.get("is", True), bool):
            result.add(
                _ptr(pointer, "is"),
                "not_a_boolean",
                "'is' must be true or false.",
                'Write "is": true for granted consent.',
            )
    elif kind == "event":
        result.conditions += 1
        _check_event(node, pointer, result)
    elif kind == "in_audience":
        result.conditions += 1
        _allow_keys(node, {"in_audience"}, pointer, result)
        ref = node["in_audience"]
        if not isinstance(ref, int) or isinstance(ref, bool) or ref <= 0:
            result.add(
                _ptr(pointer, "in_audience"),
                "bad_audience_reference",
                "in_audience takes an audience id.",
                "Use the numeric id shown on the audience's page.",
            )
        else:
            result.audience_ids.add(ref)


def _allow_keys(node: dict[str, Any], allowed: set[str], pointer: str, result: Validation) -> None:
    for key in node:
        if key not in allowed:
            result.add(
                _ptr(pointer, key),
                "unknown_key",
                f"{key!r} is not a key of this condition.",
                f"Allowed keys: {', '.join(sorted(allowed))}{_did_you_mean(str(key), sorted(allowed))}",
            )


def _check_attr(node: dict[str, Any], pointer: str, result: Validation) -> None:
    _allow_keys(node, {"attr", "op", "value"}, pointer, result)
    name = node["attr"]
    spec = attribute_type(name) if isinstance(name, str) else None
    if spec is None:
        candidates = [*ATTRIBUTES, "attributes.<key>"]
        result.add(
            _ptr(pointer, "attr"),
            "unknown_attribute",
            f"unknown attribute {name!r}{_did_you_mean(str(name), list(ATTRIBUTES))}",
            f"Use one of: {', '.join(candidates)}.",
        )
        return
    kind, choices = spec
    op = node.get("op")
    allowed = OPERATORS[kind]
    if op not in allowed:
        result.add(
            _ptr(pointer, "op"),
            "operator_not_allowed" if op is not None else "missing_operator",
            f"{op!r} does not apply to {name} ({kind})." if op is not None else f"The condition on {name} has no 'op'.",
            f"For {name} use one of: {', '.join(allowed)}.",
        )
        return
    _check_value(node, op, kind, choices, name, _ptr(pointer, "value"), result)


def _check_value(
    node: dict[str, Any], op: str, kind: str, choices: tuple[str, ...], name: str, pointer: str, result: Validation
) -> None:
    if op == "is_null":
        if not isinstance(node.get("value", True), bool):
            result.add(
                pointer, "not_a_boolean", "is_null takes true or false.", 'Write "value": true to find missing values.'
            )
        return
    if "value" not in node:
        result.add(
            pointer, "missing_value", f"The condition on {name} needs a 'value'.", "Add the value to compare with."
        )
        return
    value = node["value"]
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            result.add(pointer, "not_a_list", f"{op} takes a non-empty list.", 'Write e.g. "value": ["EU", "UK"].')
            return
        if len(value) > MAX_LIST:
            result.add(
                pointer,
                "list_too_long",
                f"The list has {len(value)} values; the limit is {MAX_LIST}.",
                "Use a suppression list or an audience for long lists of people.",
            )
        values = value
    elif op == "between":
        if not isinstance(value, list) or len(value) != 2:
            result.add(pointer, "not_a_range", "between takes [low, high].", 'Write e.g. "value": [10, 100].')
            return
        values = value
    elif op == "within_days":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_WITHIN_DAYS:
            result.add(
                pointer,
                "bad_days",
                f"within_days takes a whole number of days from 1 to {MAX_WITHIN_DAYS}.",
                'Write e.g. "value": 30.',
            )
        return
    else:
        values = [value]
    for index, item in enumerate(values):
        item_ptr = pointer if len(values) == 1 and op not in ("in", "not_in", "between") else _ptr(pointer, index)
        if kind == ENUM and item not in choices:
            result.add(
                item_ptr,
                "unknown_value",
                f"{item!r} is not a {name}{_did_you_mean(str(item), list(choices))}",
                f"Use one of: {', '.join(choices)}.",
            )
        elif kind == STRING and not isinstance(item, str):
            result.add(
                item_ptr, "not_a_string", f"{name} compares with text.", 'Put the value in quotes, e.g. "value": "GB".'
            )
        elif kind == DATETIME and (refusal := moment_error(item, field=name)) is not None:
            # One reader of dates for every door (marketerapi/moments.py): `not_a_date`, or
            # `bad_utc_offset` for an offset the database cannot store (beyond ±15:59).
            result.add(
                item_ptr,
                refusal.code,
                f"{item!r} is not a date." if refusal.code == "not_a_date" else refusal.detail.split(": ", 1)[-1],
                refusal.hint,
            )
        elif kind == JSON and (item is None or not isinstance(item, (str, int, float, bool))):
            result.add(
                item_ptr,
                "bad_value",
                "Custom attributes compare with text, numbers or true/false.",
                "Use a plain value.",
            )
        elif (
            kind == JSON
            and op in ("gt", "gte", "lt", "lte", "between")
            and (isinstance(item, bool) or not isinstance(item, (int, float)))
        ):
            result.add(item_ptr, "not_a_number", f"{op} compares numbers.", "Use a number, or eq/in for text.")


def _check_event(node: dict[str, Any], pointer: str, result: Validation) -> None:
    _allow_keys(node, {"event", "within_days", "min_count", "where"}, pointer, result)
    if not isinstance(node["event"], str) or not _EVENT_TYPE.match(node["event"]):
        result.add(
            _ptr(pointer, "event"),
            "bad_event_type",
            "event takes a profile event type such as cart_abandoned.",
            "Use lower-case letters, digits and underscores.",
        )
    days = node.get("within_days")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or not 0 < days <= MAX_WITHIN_DAYS):
        result.add(
            _ptr(pointer, "within_days"),
            "bad_days",
            f"within_days takes 1 to {MAX_WITHIN_DAYS} days.",
            'Write e.g. "within_days": 7.',
        )
    count = node.get("min_count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= 10_000:
        result.add(
            _ptr(pointer, "min_count"),
            "bad_count",
            "min_count takes a whole number from 1.",
            'Write e.g. "min_count": 2; use {"not": …} for "never".',
        )
    where = node.get("where", [])
    if not isinstance(where, list):
        result.add(
            _ptr(pointer, "where"),
            "not_a_list",
            "where takes a list of property filters.",
            'Write "where": [{"property": "amount", "op": "gt", "value": 50}].',
        )
        return
    for index, item in enumerate(where):
        item_ptr = _ptr(pointer, "where", index)
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("property"), str)
            or not _CUSTOM_KEY.match(item["property"])
        ):
            result.add(
                item_ptr,
                "bad_property_filter",
                "Each filter needs a property name, an op and a value.",
                'Write {"property": "amount", "op": "gt", "value": 50}.',
            )
            continue
        _allow_keys(item, {"property", "op", "value"}, item_ptr, result)
        if item.get("op") not in EVENT_PROPERTY_OPERATORS:
            result.add(
                _ptr(item_ptr, "op"),
                "operator_not_allowed",
                f"{item.get('op')!r} does not apply to event properties.",
                f"Use one of: {', '.join(EVENT_PROPERTY_OPERATORS)}.",
            )
            continue
        _check_value(item, item["op"], JSON, (), item["property"], _ptr(item_ptr, "value"), result)


def _check_references(rules: dict[str, Any], result: Validation, lookup: Any, self_id: int | None) -> None:
    """Every referenced audience exists in this environment, and following references
    never leads back to where it started."""
    known = lookup(set(result.audience_ids))
    for pointer, ref in _references(rules, ""):
        if ref not in known:
            result.add(
                pointer,
                "audience_not_found",
                f"There is no audience {ref} in this environment.",
                "Check the id; audiences of another environment cannot be referenced.",
            )
        elif known[ref] is None:
            result.add(
                pointer,
                "audience_not_published",
                f"Audience {ref} has no live version yet.",
                "Publish it first, or remove this condition.",
            )
    # Walk the reference graph breadth-first; a path back to self_id (or any loop) is a cycle.
    seen: set[int] = set()
    frontier = {ref for _, ref in _references(rules, "")}
    while frontier:
        if self_id is not None and self_id in frontier:
            result.add(
                "/",
                "audience_cycle",
                "These rules refer back to this audience through in_audience.",
                "Remove the in_audience condition that leads back here.",
            )
            return
        seen |= frontier
        info = lookup(frontier)
        nxt: set[int] = set()
        for ref in frontier:
            if info.get(ref):
                nxt |= {r for _, r in _references(info[ref], "")}
        frontier = nxt - seen


def _references(node: Any, pointer: str = "") -> list[tuple[str, int]]:
    """(pointer, audience id) of every in_audience condition of a rule tree."""
    out: list[tuple[str, int]] = []
    if isinstance(node, dict):
        for key in ("all", "any"):
            if isinstance(node.get(key), list):
                for index, child in enumerate(node[key]):
                    out.extend(_references(child, _ptr(pointer, key, index)))
        if "not" in node:
            out.extend(_references(node["not"], _ptr(pointer, "not")))
        ref = node.get("in_audience")
        if isinstance(ref, int) and not isinstance(ref, bool):
            out.append((_ptr(pointer, "in_audience"), ref))
    return out


@dataclass(frozen=True)
class NameUse:
    """A custom attribute key, event type or event property that valid rules use: `kind` is
    a CatalogueKind value, `event_type` the event of a property ("" otherwise)."""

    pointer: str
    kind: str
    event_type: str
    key: str


def names_used(node: Any, pointer: str = "") -> list[NameUse]:
    """Every custom attribute, event type and event property of a (valid) rule tree, with
    its pointer inside the rules, in document order."""
    out: list[NameUse] = []
    if not isinstance(node, dict):
        return out
    for key in ("all", "any"):
        if isinstance(node.get(key), list):
            for index, child in enumerate(node[key]):
                out.extend(names_used(child, _ptr(pointer, key, index)))
    if "not" in node:
        out.extend(names_used(node["not"], _ptr(pointer, "not")))
    name = node.get("attr")
    if isinstance(name, str) and name.startswith(CUSTOM_PREFIX):
        out.append(NameUse(_ptr(pointer, "attr"), "attribute", "", name[len(CUSTOM_PREFIX) :]))
    event = node.get("event")
    if isinstance(event, str):
        out.append(NameUse(_ptr(pointer, "event"), "event", "", event))
        for index, item in enumerate(node.get("where") or []):
            if isinstance(item, dict) and isinstance(item.get("property"), str):
                out.append(
                    NameUse(_ptr(pointer, "where", index, "property"), "event_property", event, item["property"])
                )
    return out


@dataclass(frozen=True)
class PiiFilter:
    """A condition of a rule tree that tests the value of personal data: `field` as a
    marketer names it (`email`, `attributes.backup_email`, `order.card_holder`)."""

    pointer: str
    field: str
    op: str


def pii_filters(
    node: Any,
    *,
    pii_keys: frozenset[str] | set[str] = frozenset(),
    pii_properties: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset(),
    pointer: str = "",
) -> list[PiiFilter]:
    """Every condition of a rule tree that tests a personal value with another operator than
    a presence check: the PII profile attributes, custom attributes whose key is in
    `pii_keys`, and event properties `(event type, property)` in `pii_properties`."""
    out: list[PiiFilter] = []
    if not isinstance(node, dict):
        return out
    for key in ("all", "any"):
        if isinstance(node.get(key), list):
            for index, child in enumerate(node[key]):
                out.extend(
                    pii_filters(
                        child, pii_keys=pii_keys, pii_properties=pii_properties, pointer=_ptr(pointer, key, index)
                    )
                )
    if "not" in node:
        out.extend(
            pii_filters(node["not"], pii_keys=pii_keys, pii_properties=pii_properties, pointer=_ptr(pointer, "not"))
        )
    name, op = node.get("attr"), node.get("op")
    if isinstance(name, str) and op not in PRESENCE_OPERATORS:
        personal = name in PII_ATTRIBUTES or (name.startswith(CUSTOM_PREFIX) and name[len(CUSTOM_PREFIX) :] in pii_keys)
        if personal:
            out.append(PiiFilter(_ptr(pointer, "op"), name, str(op)))
    event = node.get("event")
    if isinstance(event, str) and pii_properties and isinstance(node.get("where"), list):
        for index, item in enumerate(node["where"]):
            if isinstance(item, dict) and (event, item.get("property")) in pii_properties:
                out.append(
                    PiiFilter(_ptr(pointer, "where", index, "op"), f"{event}.{item['property']}", str(item.get("op")))
                )
    return out


def rule_references(rules: Any) -> list[tuple[str, int]]:
    """The in_audience references of a rule tree, with their pointers inside the rules."""
    return _references(rules)


# --- checking rules in one environment ----------------------------------------------


class InvalidRules(ApplicationError):
    status = 422
    code = "invalid_rules"
    title = "The audience rules are not valid"
    hint = "Fix every problem listed in `errors`: each has a JSON pointer into the request and its own hint."


@dataclass
class RulesCheck:
    """The outcome of validating rules in one environment, and what compiling them needs."""

    validation: Validation
    live_versions: dict[int, int | None] = field(default_factory=dict)
    problems: list[dict[str, str]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def rules_pointer(pointer: str, prefix: str = "/rules") -> str:
    """A rules pointer (`/all/2/attr`, or `/` for the whole tree) as a pointer into the request."""
    return prefix if pointer in ("", "/") else prefix + pointer


class _Lookup:
    """`audience_lookup(ids)` for `validate`: `{id: live rules or None}` for audiences of
    one environment; archived ones count as unpublished (and are named so afterwards)."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.archived: set[int] = set()
        self.live_versions: dict[int, int | None] = {}

    def __call__(self, ids: Iterable[int]) -> dict[int, Any]:
        found: dict[int, Any] = {}
        rows = Audience.objects.filter(environment=self.environment, pk__in=list(ids)).values_list(
            "pk", "state", "live_version_id", "live_version__rules"
        )
        for pk, state, version_id, rules in rows:
            if state == AudienceState.ARCHIVED:
                self.archived.add(pk)
                found[pk] = None
                continue
            self.live_versions.setdefault(pk, version_id)
            found[pk] = rules if version_id is not None else None
        return found


def rules_check(
    environment: Environment, rules: Any, *, self_id: int | None = None, prefix: str = "/rules"
) -> RulesCheck:
    """Validate rules in `environment`: every problem at once, pointers prefixed with `prefix`.

    `in_audience` references resolve against the audiences of the same environment only: a
    reference to another environment's audience is `audience_not_found` there too."""
    lookup = _Lookup(environment)
    validation = validate(rules, audience_lookup=lookup, self_id=self_id)
    problems = []
    references = dict(_references(rules)) if lookup.archived else {}
    for problem in validation.problems:
        if problem.code == "audience_not_published" and references.get(problem.pointer) in lookup.archived:
            problem = Problem(
                problem.pointer,
                "audience_archived",
                f"Audience {references[problem.pointer]} is archived.",
                "Archived audiences cannot be used in rules; remove this condition or use another audience.",
            )
        entry = problem.as_dict()
        entry["pointer"] = rules_pointer(problem.pointer, prefix)
        problems.append(entry)
    # In the order of the document, so the first problem is the first a reader meets.
    problems.sort(key=lambda entry: _pointer_order(entry["pointer"]))
    live = {ref: lookup.live_versions.get(ref) for ref in validation.audience_ids}
    return RulesCheck(validation=validation, live_versions=live, problems=problems)


def _pointer_order(pointer: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in pointer.split("/"))


def rules_check_or_raise(
    environment: Environment, rules: Any, *, self_id: int | None = None, prefix: str = "/rules"
) -> RulesCheck:
    """`rules_check`, refusing rules with any problem: 422 `invalid_rules` listing every one."""
    checked = rules_check(environment, rules, self_id=self_id, prefix=prefix)
    if not checked.valid:
        count = len(checked.problems)
        raise InvalidRules(
            f"The rules have {count} problem{'s' if count != 1 else ''}; nothing was saved or computed.",
            errors=checked.problems,
        )
    return checked


# --- compiling ---------------------------------------------------------------------


def _parse_when(value: Any) -> datetime | None:
    """A rule's date (text only), read by the one reader of dates; None when it does not read."""
    if not isinstance(value, str):
        return None
    try:
        return parse_moment(value, field="value")
    except (NotADate, BadUtcOffset):
        return None


@dataclass(frozen=True)
class Compiler:
    """Compiles a validated rule tree. `now` fixes "within N days" for one evaluation;
    `live_versions` maps referenced audience ids to their live version ids."""

    now: datetime
    live_versions: dict[int, int | None] = field(default_factory=dict)

    def compile(self, node: dict[str, Any]) -> Q:
        if "all" in node:
            q = Q()
            for child in node["all"]:
                q &= self.compile(child)
            return q
        if "any" in node:
            if not node["any"]:
                return Q(pk__in=[])
            q = self.compile(node["any"][0])
            for child in node["any"][1:]:
                q |= self.compile(child)
            return q
        if "not" in node:
            return ~self.compile(node["not"])
        if "attr" in node:
            return self._attr(node)
        if "consent" in node:
            return self._consent(node)
        if "event" in node:
            return self._event(node)
        if "in_audience" in node:
            return self._in_audience(node)
        raise ValueError(f"not a valid rule: {node!r}")  # validate() first

    def _attr(self, node: dict[str, Any]) -> Q:
        name, op, value = node["attr"], node["op"], node.get("value")
        if name == "email_domain":
            return _email_domain(op, value)
        kind, _ = attribute_type(name) or (JSON, ())
        column = "attributes__" + name[len(CUSTOM_PREFIX) :] if name.startswith(CUSTOM_PREFIX) else name
        if kind == DATETIME:
            return self._when(column, op, value)
        return _compare(column, op, value, kind)

    def _when(self, column: str, op: str, value: Any) -> Q:
        if op == "is_null":
            return Q(**{f"{column}__isnull": bool(value)})
        if op == "before":
            return Q(**{f"{column}__lt": _parse_when(value)})
        if op == "after":
            return Q(**{f"{column}__gt": _parse_when(value)})
        if op == "between":
            return Q(**{f"{column}__gte": _parse_when(value[0]), f"{column}__lte": _parse_when(value[1])})
        if op == "within_days":
            return Q(**{f"{column}__gte": self.now - timedelta(days=int(value))})
        raise ValueError(op)

    def _consent(self, node: dict[str, Any]) -> Q:
        from audiences.models import Consent

        granted = Exists(
            Consent.objects.filter(profile=OuterRef("pk"), channel=node["consent"], status=ConsentStatus.GRANTED)
        )
        return Q(granted) if node.get("is", True) else ~Q(granted)

    def _event(self, node: dict[str, Any]) -> Q:
        events = ProfileEvent.objects.filter(profile=OuterRef("pk"), type=node["event"])
        if node.get("within_days"):
            events = events.filter(occurred_at__gte=self.now - timedelta(days=int(node["within_days"])))
        for item in node.get("where", []):
            events = events.filter(_compare("properties__" + item["property"], item["op"], item["value"], JSON))
        count = int(node.get("min_count", 1))
        if count == 1:
            return Q(Exists(events))
        counted = events.order_by().values("profile").annotate(n=Count("pk")).values("n")
        # A profile with no such events has no row: Coalesce reads that as 0.
        return Q(GreaterThanOrEqual(Coalesce(Subquery(counted, output_field=IntegerField()), Value(0)), count))

    def _in_audience(self, node: dict[str, Any]) -> Q:
        from audiences.models import Membership

        version_id = self.live_versions.get(node["in_audience"])
        if version_id is None:
            return Q(pk__in=[])
        return Q(Exists(Membership.objects.filter(version_id=version_id, profile_id=OuterRef("pk"))))


def _compare(column: str, op: str, value: Any, kind: str) -> Q:
    if op == "is_null":
        return Q(**{f"{column}__isnull": bool(value)})
    if op == "neq":
        return ~_compare(column, "eq", value, kind)
    if op == "not_in":
        return ~_compare(column, "in", value, kind)
    if op == "eq":
        q = Q(**{column: value})
    elif op == "in":
        q = Q(**{f"{column}__in": value})
    elif op == "contains":
        # Case-insensitive text containment; on a list-valued custom attribute it searches
        # the list's text, which finds a listed value (documented in docs/audiences.md).
        q = Q(**{f"{column}__icontains": str(value)})
    elif op == "starts_with":
        q = Q(**{f"{column}__istartswith": value})
    elif op in ("gt", "gte", "lt", "lte"):
        q = Q(**{f"{column}__{op}": value})
    elif op == "between":
        q = Q(**{f"{column}__gte": value[0], f"{column}__lte": value[1]})
    else:
        raise ValueError(op)
    if kind == JSON:
        # A missing JSON key compares as SQL NULL, and NOT NULL is NULL: pin the test to
        # false for missing keys so that negation (neq, not_in, "not") stays two-valued.
        # Django does this by itself for real nullable columns.
        q &= Q(**{f"{column}__isnull": False})
    return q


def _email_domain(op: str, value: Any) -> Q:
    """`email_domain` tests, in SQL: the lower-cased text after the first "@" of the email
    address; missing when there is no email or it has no "@" (never the whole address).
    Missing values follow the language's null semantics (comparisons false; neq, not_in and
    is_null true)."""
    domain = Case(
        When(email__contains="@", then=Lower(Substr("email", StrIndex("email", Value("@")) + 1))),
        default=Value(None),
        output_field=CharField(),
    )
    present = Q(email__contains="@")
    if op == "is_null":
        return ~present if value else present
    if op == "neq":
        return ~_email_domain("eq", value)
    if op == "not_in":
        return ~_email_domain("in", value)
    if op == "eq":
        lookup: Any = Exact(domain, str(value).lower())
    elif op == "in":
        lookup = In(domain, [str(item).lower() for item in value])
    elif op == "contains":
        lookup = Contains(domain, str(value).lower())
    elif op == "starts_with":
        lookup = StartsWith(domain, str(value).lower())
    else:
        raise ValueError(op)
    return present & Q(lookup)


def compile_rules(
    rules: dict[str, Any], *, now: datetime | None = None, live_versions: dict[int, int | None] | None = None
) -> Q:
    """A Q over Profile for a rule tree that `validate()` accepted."""
    return Compiler(now or timezone.now(), live_versions or {}).compile(rules)
