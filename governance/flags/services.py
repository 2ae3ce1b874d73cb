"""Writes of feature flags, switches and samples (django-waffle) and the flags' metadata.

`flag_set` is the one way to change an existing flag's settings — the API, the admin's
change form and actions, and the executor of an approved switch-off all call it;
`flag_create` and `flag_delete` add and remove flags; `switch_save`, `switch_delete`,
`sample_save` and `sample_delete` do the same for waffle's switches and samples, and
`flag_meta_save` describes a flag. Each asks the policy engine once, writes one audit event
and announces the change as `flag.changed`. Nothing audits a change after the fact: a
change made around these services (a shell, waffle's own commands) is in the models' field
history (simple-history), not in the audit trail.

Flags are global (waffle keeps one row per flag for every environment), so a change is
decided by the policy of **the actor's environment**, recorded in that environment's
audit trail, and announced as `flag.changed` in **every** environment, because it
affects all of them.

Switching off a flag marked `affects_personalization` changes what customers see, so it
needs the approvals of the `flag.disable_personalization` policy (approver + admin in
pilot and production): `flag_set` files the request through
`governance.approvals.request_or_run`. "Switching off" is any change that can turn the flag
off for someone who has it now (governance/flags/rollout.py `narrows`). An environment
where no such policy applies — the sandbox always, a new environment without one, or one
whose policy an admin deactivated — may not make that change at all: a sandbox token must
never be the cheap way to switch production's personalization off. Make the change from
production (or pilot), where it is filed for approval. Operators at a shell (system
actors) are not stopped, as everywhere in the policy, but are audited. Such a flag is
never deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from django.contrib.auth.models import Group, User
from django.db import models, transaction
from waffle.models import Flag, Sample, Switch

from governance import outbox, policy
from governance.actors import Actor
from governance.approvals import ActionOutcome, Execution, fingerprint_of, request_or_run
from governance.audit import trail as audit
from governance.flags.errors import FlagNotFound, PersonalizationFlagNeedsApproval, PersonalizationFlagUndeletable
from governance.flags.rollout import describe_change, flag_snapshot, narrows
from governance.models import Environment, FlagMeta, Outcome
from marketerapi.problems import InvalidInput

CREATE = "flag.create"
CHANGE = "flag.change"
DELETE = "flag.delete"
DISABLE_PERSONALIZATION = "flag.disable_personalization"
META_CHANGE = "flag.meta_change"

FLAG_META_FIELDS = ("description", "owner", "affects_personalization")
# A flag's settings beside who has it (flag_snapshot): waffle's modes the API does not use,
# and the note. A change shows them in its audit event only when they change.
OTHER_SETTINGS = ("testing", "rollout", "languages", "note")
SWITCH_FIELDS = ("name", "active", "note")
SAMPLE_FIELDS = ("name", "percent", "note")


class _Keep:
    """The default of flag_set's settings: leave this one as it is. (None is a value:
    `everyone=None` lets groups, users and the percentage decide; `percent=None` clears
    the percentage.)"""

    _instance: _Keep | None = None

    def __new__(cls) -> _Keep:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


@dataclass
class FlagChange:
    """What flag_set did to the flag (ActionOutcome.result): its settings before and after,
    whether it changed, and notes such as "nothing to change"."""

    flag: Flag
    before: dict[str, Any]
    after: dict[str, Any]
    changed: bool = False
    notes: list[str] = field(default_factory=list)


def flag_fingerprint(flag: Flag) -> str:
    return fingerprint_of("waffle.flag", flag.name, flag_snapshot(flag))


# --- flag_set -----------------------------------------------------------------------------


def _flag(name: str, actor: Actor, action: str) -> Flag:
    """The flag to change. A missing one is refused after the permission: someone who may
    not change flags is told that (403, audited), not whether a name exists; the hint
    lists no names either."""
    flag = Flag.objects.filter(name=name).select_related("meta").first()
    if flag is None:
        policy.require(actor, action)
        raise FlagNotFound(
            f"There is no flag {name!r}.",
            hint="GET /api/v1/flags/ lists the flags; admins create new ones in the admin site (Waffle › Flags).",
        )
    return flag


def _percent(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(str(value)).quantize(Decimal("0.1"))
    except (InvalidOperation, ValueError):
        number = Decimal(-1)
    if number < 0 or number > Decimal("99.9"):
        raise InvalidInput(
            f"percent must be a number from 0 to 99.9; got {value!r}.",
            hint='For everyone, send {"everyone": true}; to let groups and the percentage decide, '
            'send {"everyone": null}.',
            errors=[{"pointer": "/percent", "code": "invalid", "message": "Out of range.", "hint": "0–99.9."}],
        )
    return number


M = TypeVar("M", Group, User)


def _resolve(model: type[M], field_name: str, values: object, pointer: str) -> list[M]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, set)):
        raise InvalidInput(
            f"{pointer.strip('/')} must be a list of names.",
            errors=[{"pointer": pointer, "code": "not_a_list", "message": "Not a list.", "hint": "Send a list."}],
        )
    objects = [v for v in values if isinstance(v, model)]
    names = [str(v) for v in values if not isinstance(v, model)]
    found = {getattr(o, field_name): o for o in model._default_manager.filter(**{f"{field_name}__in": names})}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise InvalidInput(
            f"Unknown {pointer.strip('/')}: {', '.join(unknown)}.",
            hint="Use existing names; pilot groups are made in the admin site (Authentication › Groups).",
            errors=[
                {"pointer": pointer, "code": "does_not_exist", "message": f"{n!r} does not exist.", "hint": "Check it."}
                for n in unknown
            ],
        )
    return objects + list(found.values())


def _others(flag: Flag) -> dict[str, Any]:
    return {name: getattr(flag, name) for name in OTHER_SETTINGS}


def flag_set(
    *,
    actor: Actor,
    flag_name: str,
    everyone: bool | _Keep | None = KEEP,
    percent: float | Decimal | _Keep | None = KEEP,
    groups: Sequence[str | Group] | _Keep | None = KEEP,
    users: Sequence[str | User] | _Keep | None = KEEP,
    superusers: bool | _Keep = KEEP,
    staff: bool | _Keep = KEEP,
    authenticated: bool | _Keep = KEEP,
    testing: bool | _Keep = KEEP,
    rollout: bool | _Keep = KEEP,
    languages: str | _Keep = KEEP,
    note: str | _Keep = KEEP,
    context: dict[str, Any] | None = None,
    approval_refs: list[dict[str, Any]] | None = None,
) -> ActionOutcome[FlagChange]:
    """Change a flag's settings: who has it — `everyone` (True, False, or None to let the
    rest decide), `percent` (0–99.9, None clears), `groups` and `users` (names or objects;
    replace the lists, `[]` clears, None leaves them), `superusers`, `staff`,
    `authenticated` — and waffle's other settings (`testing`, `rollout`, `languages`,
    `note`). A setting not passed (KEEP) is left as it is.

    Audited with before/after and announced as `flag.changed`; `result` says what changed.
    Switching off a flag that affects personalization files an approval request instead
    (`approval`), or is refused where no approval policy applies.
    """
    flag = _flag(flag_name, actor, CHANGE)
    before = flag_snapshot(flag)
    new_percent = _percent(percent) if not isinstance(percent, _Keep) else flag.percent
    # None for groups or users means "leave as is" (an empty list clears them).
    new_groups = None if groups is None or isinstance(groups, _Keep) else _resolve(Group, "name", groups, "/groups")
    new_users = None if users is None or isinstance(users, _Keep) else _resolve(User, "username", users, "/users")
    if not isinstance(everyone, _Keep) and everyone not in (True, False, None):
        raise InvalidInput(
            f"everyone must be true, false or null; got {everyone!r}.",
            hint="true: on for all; false: off for all; null: groups, users and the percentage decide.",
        )
    wanted: dict[str, Any] = {
        "everyone": everyone,
        "superusers": superusers,
        "staff": staff,
        "authenticated": authenticated,
        **dict(zip(OTHER_SETTINGS, (testing, rollout, languages, note), strict=True)),
    }
    set_now = {name: value for name, value in wanted.items() if not isinstance(value, _Keep)}
    after = {
        **before,
        **{name: value for name, value in set_now.items() if name in before},
        "percent": float(new_percent) if new_percent is not None else None,
        "groups": sorted(g.name for g in new_groups) if new_groups is not None else before["groups"],
        "users": sorted(u.username for u in new_users) if new_users is not None else before["users"],
    }
    others_before = _others(flag)
    others_after = {**others_before, **{name: v for name, v in set_now.items() if name in OTHER_SETTINGS}}
    if after == before and others_after == others_before:
        change = FlagChange(flag, before, after, notes=["Nothing to change: the flag already has these settings."])
        return ActionOutcome(result=change)

    meta = getattr(flag, "meta", None)
    switching_off = bool(meta and meta.affects_personalization) and narrows(before, after)
    action = DISABLE_PERSONALIZATION if switching_off else CHANGE
    context = dict(context or {})
    decision = policy.require(actor, action, flag, context)

    if (
        switching_off
        and not decision.needs_approval
        and decision.rule != "system_actor"
        and not context.get("approved_request")
    ):
        raise _no_approval_policy(actor, flag, action)

    # What the executor applies once approved: the settings passed, and which of who has
    # it were left as they are.
    kept = {
        "everyone": "everyone" not in set_now,
        "percent": isinstance(percent, _Keep),
        "groups": new_groups is None,
        "users": new_users is None,
    }
    requested = {
        **set_now,
        "everyone": set_now.get("everyone"),
        "percent": None if kept["percent"] else after["percent"],
        "groups": None if kept["groups"] else after["groups"],
        "users": None if kept["users"] else after["users"],
        "keep": [name for name, is_kept in kept.items() if is_kept],
    }
    changes = {
        "before": {**before, **{k: v for k, v in others_before.items() if others_after[k] != v}},
        "after": {**after, **{k: v for k, v in others_after.items() if others_before[k] != v}},
    }

    def run() -> FlagChange:
        with transaction.atomic():
            for name, value in set_now.items():
                setattr(flag, name, value)
            flag.percent = new_percent
            flag.save()
            if new_groups is not None:
                flag.groups.set(new_groups)
            if new_users is not None:
                flag.users.set(new_users)
            _announce(actor, flag, before, after, approval=context.get("approved_request"))
            audit.record(actor, action, flag, decision=decision, changes=changes, approval_refs=approval_refs or [])
        # waffle flushes its cache on commit; flush now too, so this process (and a test in
        # one transaction) reads the new settings at once.
        flag.flush()
        return FlagChange(flag, before, after, changed=True)

    return request_or_run(
        actor=actor,
        action=action,
        target=flag,
        decision=decision,
        summary=f"Switch off the personalization flag {flag.name!r} ({describe_change(before, after)})",
        change={"flag": flag.name, "set": requested, "before": before, "after": after, "context": context},
        fingerprint=flag_fingerprint(flag),
        run=run,
    )


def _no_approval_policy(actor: Actor, flag: Flag, action: str) -> PersonalizationFlagNeedsApproval:
    """The sandbox (or an environment without the policy) may not switch a personalization
    flag off: refused and audited in its own transaction; `denial` lets a caller whose
    transaction rolls back (the admin) record it again."""
    reason = (
        f"Flags are global: switching off {flag.name!r} changes what customers see in every environment, "
        f"and {actor.environment.slug} has no active approval policy for it."
    )
    decision = policy.Decision(policy.DENY, "approval_policy", [reason], hint=PersonalizationFlagNeedsApproval.hint)
    with transaction.atomic():
        audit.record(actor, action, flag, outcome=Outcome.DENIED, decision=decision)
    error = PersonalizationFlagNeedsApproval(reason)
    error.denial = (actor, action, flag, decision)  # type: ignore[attr-defined]  # read by the admin's mixin
    return error


def execute_disable_personalization(execution: Execution) -> dict[str, Any]:
    """The executor of an approved personalization switch-off: the requested change, by
    the requester, with the approvals on its audit event (registered in GovernanceConfig.ready)."""
    change = execution.change
    wanted = dict(change.get("set") or {})
    keep = set(wanted.pop("keep", None) or [])
    settings = {name: value for name, value in wanted.items() if name not in keep}
    outcome = flag_set(
        actor=execution.actor,
        flag_name=change["flag"],
        context=execution.context,
        approval_refs=execution.approval_refs,
        **settings,
    )
    done = outcome.result
    assert done is not None  # the context carries approved_request: it runs, never files again
    return {"flag": done.flag.name, "changed": done.changed, "after": done.after}


# --- adding and deleting flags ----------------------------------------------------------------


def flag_create(*, actor: Actor, flag: Flag, groups: Sequence[Group] = (), users: Sequence[User] = ()) -> Flag:
    """Add a flag (`flag` unsaved, its settings set; its groups and users given apart).
    Describe it with flag_meta_save."""
    decision = policy.require(actor, CREATE)
    with transaction.atomic():
        flag.save()
        flag.groups.set(groups)
        flag.users.set(users)
        after = flag_snapshot(flag)
        _announce(actor, flag, {}, after)
        audit.record(actor, CREATE, flag, decision=decision, changes={"before": None, "after": after})
    flag.flush()
    return flag


def flag_delete(*, actor: Actor, flag: Flag) -> None:
    """Delete a flag: code that asks for it then finds it off for everyone. A flag that
    affects personalization is never deleted (that would switch it off without approvals)."""
    decision = policy.require(actor, DELETE, flag)
    meta = FlagMeta.objects.filter(flag=flag).first()
    if meta is not None and meta.affects_personalization:
        _refuse_delete(actor, flag)
    _delete(actor, flag, decision)


def _refuse_delete(actor: Actor, flag: Flag) -> None:
    reason = f"{flag.name} affects personalization; deleting it switches it off for everyone."
    decision = policy.Decision(policy.DENY, "personalization_flag", [reason], hint=PersonalizationFlagUndeletable.hint)
    with transaction.atomic():
        audit.record(actor, DELETE, flag, outcome=Outcome.DENIED, decision=decision)
    error = PersonalizationFlagUndeletable(reason)
    error.denial = (actor, DELETE, flag, decision)  # type: ignore[attr-defined]  # read by the admin's mixin
    raise error


def _delete(actor: Actor, obj: Flag | Switch | Sample, decision: policy.Decision) -> None:
    before = {"name": obj.name}
    # Announced and described while the row still has its id.
    target = audit.describe_target(obj)
    with transaction.atomic():
        _announce(actor, obj, before, None)
        obj.delete()
        audit.record(actor, DELETE, target, decision=decision, changes={"before": before, "after": None})


# --- switches and samples ---------------------------------------------------------------------


def _save_simple(actor: Actor, obj: Switch | Sample, fields: tuple[str, ...]) -> None:
    creating = obj.pk is None
    action = CREATE if creating else CHANGE
    stored = None if creating else type(obj)._default_manager.filter(pk=obj.pk).values(*fields).first()
    after = {name: _jsonable(getattr(obj, name)) for name in fields}
    before = None if stored is None else {name: _jsonable(value) for name, value in stored.items()}
    if before == after:
        return  # saved without a change (the admin's "Save" on an untouched form)
    decision = policy.require(actor, action, obj)
    with transaction.atomic():
        obj.save()
        _announce(actor, obj, before or {}, after)
        audit.record(actor, action, obj, decision=decision, changes={"before": before, "after": after})
    obj.flush()


def _jsonable(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def switch_save(*, actor: Actor, switch: Switch) -> Switch:
    """Add or change a switch (on or off for everyone, and its note)."""
    _save_simple(actor, switch, SWITCH_FIELDS)
    return switch


def switch_delete(*, actor: Actor, switch: Switch) -> None:
    _delete(actor, switch, policy.require(actor, DELETE, switch))


def sample_save(*, actor: Actor, sample: Sample) -> Sample:
    """Add or change a sample (the share of requests it is on for, and its note)."""
    _save_simple(actor, sample, SAMPLE_FIELDS)
    return sample


def sample_delete(*, actor: Actor, sample: Sample) -> None:
    _delete(actor, sample, policy.require(actor, DELETE, sample))


# --- metadata -------------------------------------------------------------------------------


def flag_meta_save(*, actor: Actor, meta: FlagMeta) -> FlagMeta:
    """Describe a flag: what it is for, who owns it, whether switching it off changes what
    customers see (then switching it off needs approvals)."""
    decision = policy.require(actor, META_CHANGE, meta)
    with transaction.atomic():
        stored = FlagMeta.objects.select_for_update().filter(pk=meta.pk).values(*FLAG_META_FIELDS).first()
        after = {name: getattr(meta, name) for name in FLAG_META_FIELDS}
        meta.save()
        if stored is None:
            changes: dict[str, Any] = {"before": None, "after": after}
        else:
            changed = [name for name in FLAG_META_FIELDS if stored[name] != after[name]]
            changes = {"before": {k: stored[k] for k in changed}, "after": {k: after[k] for k in changed}}
        audit.record(actor, META_CHANGE, meta.flag, decision=decision, changes=changes)
    return meta


# --- announcing -------------------------------------------------------------------------------


def _announce(
    actor: Actor,
    instance: models.Model,
    before: dict[str, Any],
    after: dict[str, Any] | None,
    approval: Any = None,
) -> None:
    """flag.changed in every environment: a flag is global, so each one's subscribers hear of it."""
    data = {
        "kind": instance._meta.model_name,
        "name": getattr(instance, "name", str(instance)),
        "before": before,
        "after": after,
        "by": actor.label,
        "door": actor.door,
        "changed_from": actor.environment.slug,
        "approval_request": approval,
    }
    for environment in Environment.objects.order_by("id"):
        outbox.emit("flag.changed", instance, data, environment=environment)
