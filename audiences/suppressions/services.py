"""Suppression lists: people never to contact, applied everywhere (preview, publish, send).

Each environment has one **global** list and any number of **named** lists; every list
applies to every audience of its environment. People are listed by `external_id` or by
the SHA-256 of their lower-cased email address: a plain email address is hashed on the
way in and never stored.

Reads (`suppression_lists`) and writes (`suppression_list_create`,
`suppression_entries_change`) follow the services pattern: the policy first, then one
transaction with a set-based change (one read of what is listed, one bulk insert, one
delete per key kind) and one audit event as its last write. Changing the global list in
pilot or production asks for two approvals (`suppression.change_global`); the approved
request runs the same service with the requester as actor.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet

from audiences.models import SuppressionEntry, SuppressionList
from audiences.profiles.errors import check_batch_size, raise_row_errors, row_error
from governance import policy
from governance.actors import Actor
from governance.approvals import Execution, approval_request_create, register_executor
from governance.audit import trail as audit
from governance.models import ApprovalRequest
from marketerapi.problems import ApplicationError, InvalidInput, NotFound

GLOBAL = "global"
KINDS = ("external_id", "email_hash")
WRITE_BATCH = 1000
# How many listed keys an audit event names; the counts are always complete.
AUDIT_SAMPLE = 100
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_HASH = re.compile(r"^[0-9a-f]{64}$")

Key = tuple[str, str]


class SuppressionListNotFound(NotFound):
    code = "suppression_list_not_found"
    title = "There is no such suppression list"
    hint = 'GET /api/v1/suppressions/ lists them; send {"name": …} to create a named list.'


class SuppressionListExists(ApplicationError):
    status = 409
    code = "suppression_list_exists"
    title = "A suppression list with this name exists already"
    hint = 'Add entries to it with {"list": "<name>", "entries": [...]}, or choose another name.'


def hash_email(email: str) -> str:
    """SHA-256 of the lower-cased address, as profiles' `email_hash` column computes it."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


# --- reading entries from a request ----------------------------------------------------------


def parse_entries(rows: Any, *, key: str = "entries") -> list[Key]:
    """Turn `[{"external_id": …} | {"email": …} | {"email_hash": …}]` into keys; every bad
    row is reported at once (pointers `/entries/<index>/<field>`), duplicates collapse."""
    if not isinstance(rows, list):
        raise InvalidInput(
            f"`{key}` must be a list.",
            errors=[
                {
                    "pointer": f"/{key}",
                    "code": "not_a_list",
                    "message": f"`{key}` must be a JSON array.",
                    "hint": f'Send e.g. "{key}": [{{"external_id": "cust-1"}}, {{"email": "ann@example.com"}}].',
                }
            ],
        )
    check_batch_size(rows, key)
    errors: list[dict[str, Any]] = []
    keys: dict[Key, None] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            errors.append(
                row_error(
                    index,
                    key,
                    None,
                    "not_an_object",
                    f"Entry {index} is not an object.",
                    'Send {"external_id": "…"} or {"email": "…"}.',
                )
            )
            continue
        unknown = [name for name in row if name not in ("external_id", "email", "email_hash")]
        for name in unknown:
            errors.append(
                row_error(
                    index,
                    key,
                    str(name),
                    "unknown_field",
                    f"Unknown field {name!r}.",
                    "An entry has one of: external_id, email, email_hash.",
                )
            )
        present = [name for name in ("external_id", "email", "email_hash") if name in row]
        if unknown:
            continue
        if len(present) != 1:
            errors.append(
                row_error(
                    index,
                    key,
                    None,
                    "one_key",
                    "An entry names a person by exactly one of external_id, email or email_hash.",
                    'Send {"external_id": "cust-1"} or {"email": "ann@example.com"}, one per entry.',
                )
            )
            continue
        name = present[0]
        value = row[name]
        if not isinstance(value, str) or not value.strip():
            errors.append(row_error(index, key, name, "blank", f"{name} must be a non-empty string.", "Send text."))
            continue
        value = value.strip()
        if name == "external_id":
            if len(value) > 255:
                errors.append(
                    row_error(
                        index, key, name, "max_length", "external_id is longer than 255 characters.", "Shorten it."
                    )
                )
                continue
            keys[("external_id", value)] = None
        elif name == "email":
            if not _EMAIL.match(value) or len(value) > 254:
                errors.append(
                    row_error(
                        index,
                        key,
                        name,
                        "invalid_email",
                        f"{value!r} is not an email address.",
                        "Send e.g. ann@example.com.",
                    )
                )
                continue
            keys[("email_hash", hash_email(value))] = None
        else:
            if not _HASH.match(value.lower()):
                errors.append(
                    row_error(
                        index,
                        key,
                        name,
                        "invalid_hash",
                        "email_hash must be 64 hexadecimal characters.",
                        "Send the hex SHA-256 of the lower-cased email address, or send the email itself.",
                    )
                )
                continue
            keys[("email_hash", value.lower())] = None
    raise_row_errors(errors, allowed_fields=["external_id", "email", "email_hash"])
    return list(keys)


# --- reads ---------------------------------------------------------------------------------


def suppression_lists(*, actor: Actor) -> QuerySet[SuppressionList]:
    """The lists of the actor's environment with their entry counts (one query per page)."""
    policy.require(actor, "suppression.view")
    return (
        SuppressionList.objects.filter(environment=actor.environment)
        .select_related("created_by")
        .annotate(entry_count=Count("entries"))
    )


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


@dataclass
class SuppressionChange:
    """What a change did; `approval` is set instead when a request was filed."""

    suppression_list: SuppressionList | None
    added: int = 0
    already_listed: int = 0
    removed: int = 0
    not_listed: int = 0
    approval: ApprovalRequest | None = None
    created: bool = False
    notes: list[str] = field(default_factory=list)

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
                    created_by=actor.user,
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


def suppression_entries_change(
    *,
    actor: Actor,
    list_name: str,
    add: Sequence[Key] = (),
    remove: Sequence[Key] = (),
    reason: str = "",
    context: dict[str, Any] | None = None,
    approval_refs: list[dict[str, Any]] | None = None,
) -> SuppressionChange:
    """Add and remove people on a list (`global` or a named one) in one transaction.

    The global list is created on its first change. In environments whose policy asks
    for approval of global changes, a request is filed instead (nothing changes yet).
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

    if decision.needs_approval:
        target: Any = found or (
            SuppressionList._meta.label_lower,
            "",
            f"global suppression list of {actor.environment}",
        )
        parts = []
        if add:
            parts.append(f"add {len(add):,}")
        if remove:
            parts.append(f"remove {len(remove):,}")
        with transaction.atomic():
            request = approval_request_create(
                actor=actor,
                action=action,
                target=target,
                summary=f"Change the global suppression list of {actor.environment}: "
                + (" and ".join(parts) or "no entries"),
                change={
                    "list": GLOBAL,
                    "add": _split(add),
                    "remove": _split(remove),
                    "reason": reason,
                    "context": context,
                },
                decision=decision,
            )
        return SuppressionChange(found, approval=request)

    with transaction.atomic():
        created = False
        if found is None:
            try:
                with transaction.atomic():
                    found = SuppressionList.objects.create(
                        environment=actor.environment,
                        name=GLOBAL,
                        is_global=True,
                        description="People never to contact in this environment",
                        created_by=actor.user,
                    )
                    created = True
            except IntegrityError:
                found = _find_list(actor, list_name)
                if found is None:
                    raise
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
            approval_refs=approval_refs or [],
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


def _execute_global_change(execution: Execution) -> dict[str, Any]:
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
    )
    return {"list": GLOBAL, **outcome.counts()}


register_executor("suppression.change_global", _execute_global_change)
