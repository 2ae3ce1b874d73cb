"""Who may filter on personal data: the rule that a role which may not see PII may not learn
it by any door either (PRODUCT.md §4, issue 12).

A rule that tests the *value* of personal data — `{"attr": "phone", "op": "starts_with",
"value": "+4477009"}` — answers one question about a person per count; seventy previews
rebuild a phone number. So every door that evaluates an actor's rules (preview, validate,
publish, saving them, `in_audience`, an audience's member list) asks here first:

- the PII profile attributes (`audiences.rules.PII_ATTRIBUTES`), the custom attributes and
  event properties an admin marked as personal data in the catalogue, may be tested only
  for presence (`is_null`) by a role without `profile.view_pii`: anything else is a 403
  `pii_filter_refused` naming each condition, with a hint (`email_domain` stays open);
- conditions reached through `in_audience` count too: an audience whose live rules test
  personal data tells who matches them;
- a role that may see PII (compliance reviewers; the system) may, and each such use is
  audited as a PII read (`profile.pii_read`, with what it was for and the conditions).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audiences.models import Audience, CatalogueEntry, CatalogueKind
from audiences.profiles.errors import PiiFilterRefused
from audiences.profiles.selectors import profile_pii_decision
from audiences.rules import PiiFilter, names_used, pii_filters, rule_references, rules_pointer
from governance import policy
from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import Environment, Outcome

PII_HINT = (
    'Filter on presence instead ({"attr": "email", "op": "is_null", "value": false}), or on the email domain '
    '({"attr": "email_domain", "op": "eq", "value": "example.com"}); only a compliance reviewer may filter on '
    "the value of personal data."
)


def pii_catalogue(environment: Environment) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """The custom attribute keys and (event type, property) pairs marked as personal data in
    the environment's catalogue: one query."""
    keys: set[str] = set()
    properties: set[tuple[str, str]] = set()
    rows = CatalogueEntry.objects.filter(environment=environment, pii=True).values_list("kind", "event_type", "key")
    for kind, event_type, key in rows:
        if kind == CatalogueKind.ATTRIBUTE:
            keys.add(key)
        elif kind == CatalogueKind.EVENT_PROPERTY:
            properties.add((event_type, key))
    return frozenset(keys), frozenset(properties)


def pii_uses(environment: Environment, rules: Any, *, prefix: str = "/rules") -> list[dict[str, str]]:
    """Every condition of `rules` that tests a personal value, as problems with pointers into
    the request — and, for each `in_audience` whose live rules (followed further) test one,
    a problem at that `in_audience`. One query for the catalogue, one per level of
    references."""
    # The live rules of every audience reached through in_audience (one query per level).
    references = rule_references(rules)
    live: dict[int, Any] = {}
    frontier = {ref for _, ref in references}
    while frontier:
        rows = dict(
            Audience.objects.filter(environment=environment, pk__in=frontier, live_version__isnull=False).values_list(
                "pk", "live_version__rules"
            )
        )
        live.update(rows)
        frontier = {ref for rules_of in rows.values() for _, ref in rule_references(rules_of)} - set(live)
    # The catalogue is read only when some of these rules name custom attributes or event properties.
    named = any(
        use.kind in (CatalogueKind.ATTRIBUTE, CatalogueKind.EVENT_PROPERTY)
        for tree in (rules, *live.values())
        for use in names_used(tree)
    )
    keys, properties = pii_catalogue(environment) if named else (frozenset(), frozenset())
    found = [_problem(item, prefix) for item in pii_filters(rules, pii_keys=keys, pii_properties=properties)]
    if not references:
        return found
    tainted: dict[int, bool] = {}

    def tests_pii(audience_id: int, seen: frozenset[int]) -> bool:
        if audience_id in tainted:
            return tainted[audience_id]
        rules_of = live.get(audience_id)
        if rules_of is None or audience_id in seen:
            return False
        result = bool(pii_filters(rules_of, pii_keys=keys, pii_properties=properties)) or any(
            tests_pii(ref, seen | {audience_id}) for _, ref in rule_references(rules_of)
        )
        tainted[audience_id] = result
        return result

    for pointer, ref in references:
        if tests_pii(ref, frozenset()):
            message = f"Audience {ref} filters on personal data; using it here would tell who matches that filter."
            found.append(
                {
                    "pointer": rules_pointer(pointer, prefix),
                    "code": "pii_filter_refused",
                    "field": f"in_audience {ref}",
                    "message": message,
                    "hint": "Use an audience that filters on presence or on the email domain instead, or ask a "
                    "compliance reviewer.",
                }
            )
    found.sort(key=lambda entry: entry["pointer"])
    return found


def _problem(item: PiiFilter, prefix: str) -> dict[str, str]:
    return {
        "pointer": rules_pointer(item.pointer, prefix),
        "code": "pii_filter_refused",
        "field": item.field,
        "message": f"{item.field} is personal data: your role may test only whether it is set, not {item.op!r}.",
        "hint": PII_HINT,
    }


def rules_pii_guard(
    *,
    actor: Actor,
    environment: Environment,
    rules: Any,
    purpose: str,
    target: Any = None,
    prefix: str = "/rules",
    audit_denial: str | None = None,
) -> None:
    """Refuse rules that test personal data unless the actor may see it (403
    `pii_filter_refused`, every such condition in `errors`); when they may, audit the use as
    a PII read (`profile.pii_read`: `purpose` says which door and action, e.g.
    "audience.preview"). `audit_denial` names the change whose refusal is audited as denied
    (saving, publishing); reads are refused without an audit row, like other read refusals."""
    uses = pii_uses(environment, rules, prefix=prefix)
    if not uses:
        return
    decision = profile_pii_decision(actor=actor)
    if decision.allowed:
        with transaction.atomic():
            audit.record(
                actor,
                "profile.pii_read",
                target if target is not None else ("audiences.rules", "", purpose),
                decision=decision,
                changes={"through": purpose, "conditions": [{"pointer": u["pointer"]} for u in uses]},
            )
        return
    fields = sorted({u["field"] for u in uses})
    detail = (
        f"The rules filter on personal data ({', '.join(fields)}) at {', '.join(u['pointer'] for u in uses[:5])}"
        f"{' …' if len(uses) > 5 else ''}; your role may not see it, so it may not filter on it either."
    )
    error = PiiFilterRefused(detail, errors=uses)
    if audit_denial is not None:
        refusal = policy.Decision(policy.DENY, "pii_filter", [detail], hint=error.hint)
        with transaction.atomic():
            audit.record(
                actor,
                audit_denial,
                target,
                outcome=Outcome.DENIED,
                decision=refusal,
                changes={"refused": {"code": "pii_filter_refused", "pointers": [u["pointer"] for u in uses]}},
            )
        # Inside an idempotency claim the record above is rolled back with the refusal; the
        # claim records it again (governance/limits/idempotency.py), as for policy.require.
        error.denial = (actor, audit_denial, target, refusal)  # type: ignore[attr-defined]
    raise error
