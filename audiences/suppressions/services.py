"""Suppression lists: people never to contact, applied everywhere (preview, publish, send).

Each environment has one **global** list (made with the environment: `global_list_ensure`)
and any number of **named** lists; every list applies to every audience of its environment.
People are listed by `external_id` or by the SHA-256 of their lower-cased email address
(entries.py reads them from a request).

The writes (`suppression_list_create`, `suppression_entries_change`) ask the policy
first, then run one transaction with a set-based change (one read of what is listed, one
bulk insert, one delete per key kind) and one audit event as its last write. Changing the
global list in pilot or production asks for two approvals (`suppression.change_global`)
through `governance.approvals.request_or_run`; the approved request runs the same service
with the requester as actor. Reads are in selectors.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.db import IntegrityError, transaction
from django.db.models import Count

from audiences.models import SuppressionEntry, SuppressionList
from audiences.profiles.errors import check_batch_size
from audiences.suppressions.entries import KINDS, Key
from audiences.suppressions.errors import SuppressionListExists, SuppressionListNotFound
from governance import policy
from governance.actors import Actor
from governance.approvals import ActionOutcome, Execution, request_or_run
from governance.audit import trail as audit
from governance.models import Environment
from marketerapi.problems import InvalidInput

if TYPE_CHECKING:
    from django.contrib.auth.models import User

GLOBAL = "global"
WRITE_BATCH = 1000
# How many listed keys an audit event names; the counts are always complete.
AUDIT_SAMPLE = 100


def _find_list(actor: Actor, name: str) -> SuppressionList | None:
    lists = SuppressionList.objects.filter(environment=actor.environment)
    return lists.filter(is_global=True).first() if name == GLOBAL else lists.filter(name=name).first()


def _with_count(suppression_list: SuppressionList) -> SuppressionList:
    return (
        SuppressionList.objects.select_related("created_by")
        .annotate(entry_count=Count("entries"))
        .get(pk=suppression_list.pk)
    )


# --- writes --------------------------------------------------------------------------------

GLOBAL_DESCRIPTION = "People never to contact in this environment"


def global_list_ensure(*, environment: Environment) -> SuppressionList:
    """The environment's global list, created if it has none: every environment has one from
    the moment it exists (audiences/apps.py calls this when an environment is created;
    migration 0011 made the lists of the environments that existed before). Part of creating
    the environment, so no audit event of its own; changing the list is audited."""
    found = SuppressionList.objects.filter(environment=environment, is_global=True).first()
    if found is not None:
        return found
    try:
        # A savepoint: a concurrent creation of the same list fails here without breaking
        # the caller's transaction.
        with transaction.atomic():
            return SuppressionList.objects.create(
                environment=environment, name=GLOBAL, is_global=True, description=GLOBAL_DESCRIPTION
            )
    except IntegrityError:
        return SuppressionList.objects.get(environment=environment, is_global=True)


@dataclass
class SuppressionChange:
    """What a change of a list did: the list (with its entry count) and the counts."""

    suppression_list: SuppressionList
    added: int = 0
    already_listed: int = 0
    removed: int = 0
    not_listed: int = 0
    created: bool = False

    def counts(self) -> dict[str, int]:
        return {
            "added": self.added,
            "already_listed": self.already_listed,
            "removed": self.removed,
            "not_listed": self.not_listed,
        }


def _split(keys: Iterable[Key]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for kind, value in keys:
        out[kind].append(value)
    return out


def _listed(suppression_list: SuppressionList, kind: str, values: list[str]) -> set[str]:
    if not values:
        return set()
    return set(
        SuppressionEntry.objects.filter(suppression_list=suppression_list, **{f"{kind}__in": values})
        .order_by()
        .values_list(kind, flat=True)
    )


def _add(suppression_list: SuppressionList, keys: Sequence[Key], reason: str) -> tuple[int, int]:
    by_kind = _split(keys)
    new: list[SuppressionEntry] = []
    already = 0
    for kind, values in by_kind.items():
        listed = _listed(suppression_list, kind, values)
        already += len(listed)
        new.extend(
            SuppressionEntry(suppression_list=suppression_list, reason=reason[:200], **{kind: value})
            for value in values
            if value not in listed
        )
    SuppressionEntry.objects.bulk_create(new, batch_size=WRITE_BATCH)
    return len(new), already


def _remove(suppression_list: SuppressionList, keys: Sequence[Key]) -> tuple[int, int]:
    removed = missing = 0
    for kind, values in _split(keys).items():
        listed = _listed(suppression_list, kind, values)
        if listed:
            SuppressionEntry.objects.filter(suppression_list=suppression_list, **{f"{kind}__in": list(listed)}).delete()
        removed += len(listed)
        missing += len(values) - len(listed)
    return removed, missing


def _sample(keys: Sequence[Key]) -> dict[str, Any]:
    shown = [{kind: value} for kind, value in keys[:AUDIT_SAMPLE]]
    return {"entries": shown, "truncated": len(keys) > AUDIT_SAMPLE}


def suppression_list_create(
    *, actor: Actor, name: str, description: str = "", entries: Sequence[Key] = (), reason: str = ""
) -> SuppressionChange:
    """Create a named list in the actor's environment, optionally with its first entries."""
    decision = policy.require(actor, "suppression.change")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput(
            "A list needs a name of 1 to 100 characters.",
            errors=[{"pointer": "/name", "code": "invalid", "message": "Bad name.", "hint": "Send a short name."}],
        )
    if name.lower() == GLOBAL:
        raise InvalidInput(
            "'global' is the environment's global list; it exists without being created.",
            errors=[
                {
                    "pointer": "/name",
                    "code": "reserved_name",
                    "message": "'global' is reserved.",
                    "hint": 'Add to the global list with {"list": "global", "entries": [...]}.',
                }
            ],
        )
    check_batch_size(entries, "entries")
    if SuppressionList.objects.filter(environment=actor.environment, name=name).exists():
        raise SuppressionListExists(f"{actor.environment.slug} has a suppression list named {name!r} already.")
    with transaction.atomic():
        try:
            with transaction.atomic():
                created = SuppressionList.objects.create(
                    environment=actor.environment,
                    name=name,
                    description=(description or "")[:200],
                    # Actor.user is typed AbstractBaseUser; the user model is auth.User.
                    created_by=cast("User | None", actor.user),
                )
        except IntegrityError:
            raise SuppressionListExists(
                f"{actor.environment.slug} has a suppression list named {name!r} already."
            ) from None
        added, already = _add(created, entries, reason)
        audit.record(
            actor,
            "suppression.create",
            created,
            decision=decision,
            changes={
                "after": {"name": created.name, "description": created.description, "is_global": False},
                "added": added,
                **_sample(list(entries)),
            },
        )
    return SuppressionChange(_with_count(created), added=added, already_listed=already, created=True)


class _GlobalListToBe(tuple[str, str, str]):
    """The global list before its first change, as audit and approvals describe a target
    that is not a row yet — (type, id, label) — plus its environment, so the lookup of an
    open request for it stays in this environment."""

    environment_id: int


def suppression_entries_change(
    *,
    actor: Actor,
    list_name: str,
    add: Sequence[Key] = (),
    remove: Sequence[Key] = (),
    reason: str = "",
    context: dict[str, Any] | None = None,
    approval_refs: list[dict[str, Any]] | None = None,
) -> ActionOutcome[SuppressionChange]:
    """Add and remove people on a list (`global` or a named one) in one transaction.

    (A missing global list is created on its first change.) In environments whose policy asks
    for approval of global changes, a request is filed instead (nothing changes yet; a
    second one waits until the first is decided: 409 `approval_pending`).
    """
    is_global = list_name == GLOBAL
    action = "suppression.change_global" if is_global else "suppression.change"
    found = _find_list(actor, list_name)
    if found is None and not is_global:
        raise SuppressionListNotFound(f"There is no suppression list {list_name!r} in {actor.environment.slug}.")
    check_batch_size(add, "entries")
    check_batch_size(remove, "remove")
    context = dict(context or {})
    decision = policy.require(actor, action, found, context)
    target: Any = found
    if found is None:
        target = _GlobalListToBe(
            (SuppressionList._meta.label_lower, "", f"global suppression list of {actor.environment}")
        )
        target.environment_id = actor.environment.pk
    parts = [f"add {len(add):,}"] if add else []
    if remove:
        parts.append(f"remove {len(remove):,}")
    return request_or_run(
        actor=actor,
        action=action,
        target=target,
        decision=decision,
        summary=f"Change the global suppression list of {actor.environment}: " + (" and ".join(parts) or "no entries"),
        change={"list": GLOBAL, "add": _split(add), "remove": _split(remove), "reason": reason, "context": context},
        run=lambda: _change_now(actor, action, found, add, remove, reason, decision, approval_refs or []),
    )


def _change_now(
    actor: Actor,
    action: str,
    found: SuppressionList | None,
    add: Sequence[Key],
    remove: Sequence[Key],
    reason: str,
    decision: policy.Decision,
    approval_refs: list[dict[str, Any]],
) -> SuppressionChange:
    with transaction.atomic():
        created = False
        if found is None:
            # Only an environment whose list was removed by hand lacks one (they are made with it).
            found = global_list_ensure(environment=actor.environment)
            created = True
        # One change of a list at a time: the listed-or-not reads below stay true until commit.
        locked = SuppressionList.objects.select_for_update().get(pk=found.pk)
        added, already = _add(locked, add, reason)
        removed, missing = _remove(locked, remove)
        audit.record(
            actor,
            action,
            locked,
            decision=decision,
            changes={
                "list": locked.name,
                "created": created,
                "added": added,
                "already_listed": already,
                "removed": removed,
                "not_listed": missing,
                "reason": reason,
                "add": _sample(list(add)),
                "remove": _sample(list(remove)),
            },
            approval_refs=approval_refs,
        )
    return SuppressionChange(
        _with_count(locked),
        added=added,
        already_listed=already,
        removed=removed,
        not_listed=missing,
        created=created,
    )


def _keys_from(change: Mapping[str, Any]) -> list[Key]:
    return [(kind, value) for kind in KINDS for value in (change or {}).get(kind, [])]


def execute_global_change(execution: Execution) -> dict[str, Any]:
    """The executor of an approved change of the global list, by the requester."""
    change = execution.change
    outcome = suppression_entries_change(
        actor=execution.actor,
        list_name=GLOBAL,
        add=_keys_from(change.get("add") or {}),
        remove=_keys_from(change.get("remove") or {}),
        reason=change.get("reason") or "",
        context=execution.context,
        approval_refs=execution.approval_refs,
    ).result
    assert outcome is not None  # an approved request runs (the approval rule is skipped)
    return {"list": GLOBAL, **outcome.counts()}
