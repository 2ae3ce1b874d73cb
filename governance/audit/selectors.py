"""Reads of the audit log: which events an actor may see, and the filters of the list and
the exports.

Every role reads the events of its own actions; the roles in
`governance.roles.AUDIT_READ_ALL_ROLES` (approver, compliance reviewer, admin) read
everyone's. Nobody reads another environment's events. Query parameters are parsed here,
once for the API list and the exports, so both accept and refuse exactly the same values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db.models import F, QuerySet

from governance import policy
from governance.actors import Actor
from governance.audit import chain
from governance.models import AuditEvent, Outcome
from governance.roles import AUDIT_READ_ALL_ROLES
from marketerapi.api import UnknownQueryParameters
from marketerapi.moments import BadUtcOffset, NotADate, parse_moment
from marketerapi.problems import InvalidInput

SCOPE_ALL = "all"
SCOPE_OWN = "own"

FILTER_PARAMETERS: tuple[str, ...] = ("actor", "action", "target", "outcome", "since", "until")

# An action name (`audience.publish`) or a prefix ending in `.*` (`audience.*`).
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?$")
# An unencoded "+" in a query string arrives as a space: 2026-11-01T10:00:00 01:00.
DATETIME_HINT = (
    "Send an ISO 8601 date-time such as 2026-11-01T10:00:00Z, or a date such as 2026-11-01 "
    "(midnight UTC). Without an offset, UTC is assumed; write a '+' offset as %2B in a URL."
)


def audit_read_scope(actor: Actor) -> str:
    """`all` for the roles that read everyone's events (and for the system), else `own`."""
    if actor.is_system or set(actor.roles) & AUDIT_READ_ALL_ROLES:
        return SCOPE_ALL
    return SCOPE_OWN


@dataclass(frozen=True)
class AuditFilters:
    """Validated filters. `action` ending in `.*` is a prefix; `target_id` `*` is any id."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """The filters that were set, as JSON-ready values (recorded with each export)."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    def apply(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if self.actor is not None:
            events = events.filter(actor_label=self.actor)
        if self.action is not None:
            if self.action.endswith(".*"):
                events = events.filter(action__startswith=self.action[:-1])
            else:
                events = events.filter(action=self.action)
        if self.target_type is not None:
            events = events.filter(target_type=self.target_type)
            if self.target_id != "*":
                events = events.filter(target_id=self.target_id)
        if self.outcome is not None:
            events = events.filter(outcome=self.outcome)
        if self.since is not None:
            events = events.filter(occurred_at__gte=self.since)
        if self.until is not None:
            events = events.filter(occurred_at__lt=self.until)
        return events


def _error(parameter: str, code: str, message: str, hint: str) -> dict[str, str]:
    return {"pointer": "", "parameter": parameter, "code": code, "message": message, "hint": hint}


def _parse_instant(name: str, raw: str, errors: list[dict[str, str]]) -> datetime | None:
    """`since` / `until` by the one reader of dates (marketerapi/moments.py); what does not read
    is listed in `errors`: `invalid_datetime` (this endpoint's code for `not_a_date`) or
    `bad_utc_offset` (beyond ±15:59, which the database cannot store)."""
    try:
        return parse_moment(raw, field=name)
    except BadUtcOffset as error:
        errors.append(_error(name, "bad_utc_offset", error.detail, error.hint))
    except NotADate:
        errors.append(_error(name, "invalid_datetime", f"{raw!r} is not an ISO 8601 date-time.", DATETIME_HINT))
    return None


def audit_filters_parse(params: Mapping[str, Any], *, extra_parameters: Iterable[str] = ()) -> AuditFilters:
    """Parse `actor`, `action`, `target`, `outcome`, `since`, `until`; an empty value is no filter.

    Raises UnknownQueryParameters (400) for a parameter the endpoint does not know, and
    InvalidInput (422, code `invalid_filter`) listing every bad value at once.
    """
    allowed = (*FILTER_PARAMETERS, *extra_parameters)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UnknownQueryParameters(
            f"Unknown query parameter(s): {', '.join(unknown)}.",
            hint=f"Use only: {', '.join(sorted(allowed))}.",
            errors=[
                _error(
                    name,
                    "unknown_query_parameter",
                    f"{name!r} is not a parameter of this endpoint.",
                    f"Use one of: {', '.join(sorted(allowed))}.",
                )
                for name in unknown
            ],
            allowed_parameters=sorted(allowed),
        )
    raw = {name: str(params.get(name) or "").strip() for name in FILTER_PARAMETERS}
    errors: list[dict[str, str]] = []
    values: dict[str, Any] = {}

    if raw["actor"]:
        if len(raw["actor"]) > 150:
            errors.append(_error("actor", "max_length", "A username has at most 150 characters.", "Shorten it."))
        values["actor"] = raw["actor"]
    if raw["action"]:
        if not _ACTION.match(raw["action"]):
            errors.append(
                _error(
                    "action",
                    "invalid",
                    f"{raw['action']!r} is not an action name.",
                    "Use an action such as audience.publish, or a prefix ending in .* such as audience.*.",
                )
            )
        values["action"] = raw["action"]
    if raw["target"]:
        kind, sep, ident = raw["target"].partition(":")
        if not sep or not kind or not ident:
            errors.append(
                _error(
                    "target",
                    "invalid",
                    f"{raw['target']!r} is not a target.",
                    "Use type:id as shown in an event's target, e.g. audiences.audience:42, "
                    "or type:* for every object of that type.",
                )
            )
        values["target_type"], values["target_id"] = kind, ident
    if raw["outcome"]:
        choices = [str(value) for value in Outcome.values]
        if raw["outcome"] not in choices:
            errors.append(
                _error(
                    "outcome",
                    "invalid_choice",
                    f"{raw['outcome']!r} is not an outcome.",
                    f"Use one of: {', '.join(choices)}.",
                )
            )
        values["outcome"] = raw["outcome"]
    for name in ("since", "until"):
        if raw[name]:
            values[name] = _parse_instant(name, raw[name], errors)
    since, until = values.get("since"), values.get("until")
    if since is not None and until is not None and since >= until:
        errors.append(
            _error(
                "until",
                "invalid_range",
                "`until` is not after `since`: no event can match.",
                "`since` is inclusive and `until` exclusive; make `until` the later of the two.",
            )
        )
    if errors:
        raise InvalidInput(
            f"{len(errors)} filter value(s) are not valid.",
            code="invalid_filter",
            title="Some filter values are not valid",
            hint="Fix each parameter listed in `errors`; its `hint` says how.",
            errors=errors,
        )
    return AuditFilters(**values)


def audit_events_visible(*, actor: Actor, filters: AuditFilters | None = None) -> QuerySet[AuditEvent]:
    """The events of the actor's environment that the actor may read, filtered.

    Annotated with `environment_slug` and `token_prefix` so that serializing a page or an
    export takes no further query. No policy check: callers ask for their own action.
    """
    events: QuerySet[AuditEvent] = AuditEvent.objects.filter(environment=actor.environment)
    if audit_read_scope(actor) == SCOPE_OWN:
        events = events.filter(actor_user=actor.user)
    if filters is not None:
        events = filters.apply(events)
    return events.annotate(environment_slug=F("environment__slug"), token_prefix=F("token__prefix"))


def audit_event_list(
    *, actor: Actor, params: Mapping[str, Any], extra_parameters: Iterable[str] = ()
) -> QuerySet[AuditEvent]:
    """`audit.view`: the readable events matching the query parameters, newest first."""
    policy.require(actor, "audit.view")
    filters = audit_filters_parse(params, extra_parameters=extra_parameters)
    return audit_events_visible(actor=actor, filters=filters).order_by("-id")


def audit_events_of_actor(*, actor: Actor) -> QuerySet[AuditEvent]:
    """`audit.view`: the actor's own actions in their environment, newest first (the portal's
    home page). By user, which the `audit_actor` index serves, rather than by username."""
    policy.require(actor, "audit.view")
    return audit_events_visible(actor=actor).filter(actor_user=actor.user).order_by("-id")


def audit_chain_report(*, actor: Actor) -> chain.ChainReport:
    """`audit.verify`: walk the hash chain of the actor's environment."""
    policy.require(actor, "audit.verify")
    return chain.check_chain(actor.environment.pk)


def chain_report_as_dict(report: chain.ChainReport, environment: str | None) -> dict[str, Any]:
    """A chain report as `GET /audit-events/verify` answers it and `audit_verify --json` prints it."""
    broken = report.first_broken
    return {
        "environment": environment,
        "valid": report.valid,
        "checked": report.checked,
        "first_broken": {"id": broken.event_id, "reason": broken.reason} if broken else None,
        "head": {"id": report.head_id, "hash": report.head_hash} if report.head_id is not None else None,
    }
