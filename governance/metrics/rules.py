"""Reading a proposed rule (for simulation or a proposal): every problem at once, each with
a pointer and a hint, raised as InvalidRule (422 `invalid_rule`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from governance.configuration.errors import InvalidConfig
from governance.configuration.validators import check_action_name, check_approval_action, check_condition, check_steps
from governance.limits.ratelimit import RATE_CLASSES
from governance.metrics.errors import InvalidRule
from governance.metrics.simulation import APPROVAL_POLICY, KINDS, QUOTA, RATE_LIMIT
from governance.roles import ROLE_NAMES

FIELDS = {
    RATE_LIMIT: ("kind", "rate_class", "limit", "role"),
    QUOTA: ("kind", "action", "limit", "period", "role"),
    APPROVAL_POLICY: ("kind", "action", "metric", "threshold", "steps", "description", "is_active", "policy_id"),
}


def _error(field: str, message: str, hint: str) -> dict[str, str]:
    return {"pointer": f"/{field}", "code": "invalid", "message": message, "hint": hint}


def _positive(raw: Any) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1 else None


def rule_parse(data: Any, *, kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidRule("The body must be a JSON object.", errors=[_error("", "Not an object.", "Send {...}.")])
    kind = data.get("kind")
    if kind not in kinds:
        raise InvalidRule(
            f"kind must be one of {', '.join(kinds)}.",
            errors=[_error("kind", f"{kind!r} is not a kind of rule.", f"Use one of: {', '.join(kinds)}.")],
        )
    errors: list[dict[str, str]] = []
    unknown = sorted(set(data) - set(FIELDS[kind]))
    for name in unknown:
        errors.append(_error(name, f"{name!r} is not a field of a {kind} rule.", f"Use: {', '.join(FIELDS[kind])}."))
    rule: dict[str, Any] = {"kind": kind}
    role = data.get("role") or ""
    if kind in (RATE_LIMIT, QUOTA):
        if role and role not in ROLE_NAMES:
            errors.append(_error("role", f"{role!r} is not a role.", f"Use one of: {', '.join(ROLE_NAMES)}."))
        rule["role"] = role
        rule["limit"] = _positive(data.get("limit"))
        if rule["limit"] is None:
            errors.append(_error("limit", "limit must be a whole number of at least 1.", "e.g. 120"))
    if kind == RATE_LIMIT:
        rule["rate_class"] = data.get("rate_class")
        if rule["rate_class"] not in RATE_CLASSES:
            errors.append(
                _error("rate_class", f"{rule['rate_class']!r} is not a rate class.", f"Use: {', '.join(RATE_CLASSES)}.")
            )
    if kind == QUOTA:
        rule["period"] = data.get("period") or "month"
        if rule["period"] not in ("day", "month"):
            errors.append(_error("period", f"{rule['period']!r} is not a period.", "Use day or month."))
        try:
            rule["action"] = check_action_name(data.get("action"))
        except InvalidConfig as exc:
            errors.append(_error("action", str(exc), "e.g. audience.publish"))
    if kind == APPROVAL_POLICY:
        try:
            rule["action"] = check_approval_action(data.get("action"))
        except InvalidConfig as exc:
            errors.append(_error("action", str(exc), "An action that approval may hold, e.g. audience.publish."))
        try:
            rule["steps"] = check_steps(data.get("steps"))
        except InvalidConfig as exc:
            errors.append(_error("steps", str(exc), 'e.g. [["approver"], ["developer", "admin"]]'))
        rule["metric"] = str(data.get("metric") or "")
        threshold = data.get("threshold")
        rule["threshold"] = threshold if isinstance(threshold, int) and not isinstance(threshold, bool) else None
        if threshold is not None and rule["threshold"] is None:
            errors.append(_error("threshold", "threshold must be a whole number.", "e.g. 50000"))
        try:
            check_condition(rule["metric"], rule["threshold"])
        except InvalidConfig as exc:
            errors.append(_error("metric", str(exc), "e.g. metric reach, threshold 50000"))
        rule["description"] = str(data.get("description") or "")[:200]
        rule["is_active"] = bool(data.get("is_active", True))
        rule["policy_id"] = data.get("policy_id")
        if rule["policy_id"] is not None and _positive(rule["policy_id"]) is None:
            errors.append(_error("policy_id", "policy_id must be the id of an approval policy.", "e.g. 3"))
    if errors:
        raise InvalidRule(f"{len(errors)} problem(s) with the proposed rule; nothing was simulated.", errors=errors)
    return rule
