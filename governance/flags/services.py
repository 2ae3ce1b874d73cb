"""Changing feature flags: `flag_set` is the one write path, and a safety net audits
changes that do not come through it (the admin site's forms, a shell, waffle's commands).

Flags are global (waffle keeps one row per flag for every environment), so a change is
decided by the policy of **the actor's environment**, recorded in that environment's
audit trail, and announced as `flag.changed` in **every** environment, because it
affects all of them.

Switching off a flag marked `affects_personalization` changes what customers see, so it
needs the approvals of the `flag.disable_personalization` policy (approver + admin in
pilot and production). "Switching off" is any change that can turn the flag off for
someone who has it now: `everyone` to no, away from yes, a lower percentage, or fewer
groups or users. An environment where no such policy applies — the sandbox always, a new
environment without one, or one whose policy an admin deactivated — may not make that
change at all: a sandbox token must never be the cheap way to switch production's
personalization off. Make the change from production (or pilot), where it is filed for
approval. Operators at a shell (system actors) are not stopped, as everywhere in the
policy, but are audited.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from waffle.models import Flag, Sample, Switch

from governance import outbox, policy
from governance.actors import Actor, client_ip
from governance.approvals import Execution, approval_request_create, fingerprint_of, register_executor
from governance.audit import trail as audit
from governance.models import ApprovalRequest, Door, Environment, Outcome
from marketerapi.problems import ApplicationError, InvalidInput, NotFound

logger = logging.getLogger(__name__)

CHANGE = "flag.change"
DISABLE_PERSONALIZATION = "flag.disable_personalization"


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


# "Leave this setting as it is" (None is a value: `everyone=None` lets groups, users and
# the percentage decide; `percent=None` clears the percentage).
KEEP: Any = _Keep()

# Set while flag_set saves, so the signal handlers below do not audit the change twice.
_in_service: ContextVar[bool] = ContextVar("flag_service", default=False)


class PersonalizationFlagNeedsApproval(ApplicationError):
    status = 403
    code = "personalization_flag_needs_approval"
    title = "This flag can only be switched off with approvals"
    hint = (
        "Make the change from production (a mk_production_… token, or the portal switched to production); "
        "it is filed there for an approver and an admin to approve."
    )


@dataclass
class FlagChange:
    """What flag_set did: changed the flag, filed an approval request, or nothing."""

    flag: Flag
    before: dict[str, Any]
    after: dict[str, Any]
    approval: ApprovalRequest | None = None
    changed: bool = False
    notes: list[str] = field(default_factory=list)


# --- snapshots ------------------------------------------------------------------------


def flag_snapshot(flag: Flag) -> dict[str, Any]:
    """The settings that decide who has the flag, as JSON."""
    return {
        "everyone": flag.everyone,
        "percent": float(flag.percent) if flag.percent is not None else None,
        "groups": sorted(flag.groups.values_list("name", flat=True)) if flag.pk else [],
        "users": sorted(flag.users.values_list("username", flat=True)) if flag.pk else [],
        "superusers": flag.superusers,
        "staff": flag.staff,
        "authenticated": flag.authenticated,
    }


def flag_fingerprint(flag: Flag) -> str:
    return fingerprint_of("waffle.flag", flag.name, flag_snapshot(flag))


def _snapshot_any(instance: Any) -> dict[str, Any]:
    if isinstance(instance, Flag):
        return flag_snapshot(instance)
    if isinstance(instance, Switch):
        return {"active": instance.active}
    if isinstance(instance, Sample):
        return {"percent": float(instance.percent) if instance.percent is not None else None}
    return {}


def narrows(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Can the change turn the flag off for someone who has it now?"""
    if before["everyone"] is False:
        return False  # off for everyone already
    if after["everyone"] is False:
        return True
    if before["everyone"] is True:
        return after["everyone"] is not True
    if after["everyone"] is True:
        return False
    return (
        (after["percent"] or 0) < (before["percent"] or 0)
        or bool(set(before["groups"]) - set(after["groups"]))
        or bool(set(before["users"]) - set(after["users"]))
        or any(before[k] and not after[k] for k in ("superusers", "staff", "authenticated"))
    )


# --- flag_set ---------------------------------------------------------------------------


def _flag(name: str) -> Flag:
    flag = Flag.objects.filter(name=name).select_related("meta").first()
    if flag is None:
        known = ", ".join(Flag.objects.order_by("name").values_list("name", flat=True)[:20]) or "none yet"
        raise NotFound(
            f"There is no flag {name!r}.",
            hint=f"Admins create flags in the admin site (Waffle › Flags). Known flags: {known}.",
            code="flag_not_found",
        )
    return flag


def _percent(value: Any) -> Decimal | None:
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


def _resolve(model: Any, field_name: str, values: Any, pointer: str) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, set)):
        raise InvalidInput(
            f"{pointer.strip('/')} must be a list of names.",
            errors=[{"pointer": pointer, "code": "not_a_list", "message": "Not a list.", "hint": "Send a list."}],
        )
    objects = [v for v in values if isinstance(v, model)]
    names = [str(v) for v in values if not isinstance(v, model)]
    found = {getattr(o, field_name): o for o in model.objects.filter(**{f"{field_name}__in": names})}
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


def flag_set(
    *,
    actor: Actor,
    flag_name: str,
    everyone: Any = KEEP,
    percent: Any = KEEP,
    groups: Any = KEEP,
    users: Any = KEEP,
    context: dict[str, Any] | None = None,
    approval_refs: list[dict[str, Any]] | None = None,
) -> FlagChange:
    """Change who has a flag: `everyone` (True, False, or None to let the rest decide),
    `percent` (0–99.9, None clears), `groups` and `users` (names or objects; replace the
    lists, `[]` clears, None leaves them). A setting not passed (KEEP) is left as it is.

    Audited with before/after and announced as `flag.changed`. Switching off a flag that
    affects personalization files an approval request instead (FlagChange.approval).
    """
    flag = _flag(flag_name)
    before = flag_snapshot(flag)
    new_percent = _percent(percent) if percent is not KEEP else flag.percent
    # None for groups or users means "leave as is" (an empty list clears them).
    groups = KEEP if groups is None else groups
    users = KEEP if users is None else users
    new_groups = _resolve(Group, "name", groups, "/groups") if groups is not KEEP else None
    new_users = _resolve(User, "username", users, "/users") if users is not KEEP else None
    if everyone is not KEEP and everyone not in (True, False, None):
        raise InvalidInput(
            f"everyone must be true, false or null; got {everyone!r}.",
            hint="true: on for all; false: off for all; null: groups, users and the percentage decide.",
        )
    after = {
        **before,
        "everyone": before["everyone"] if everyone is KEEP else everyone,
        "percent": float(new_percent) if new_percent is not None else None,
        "groups": sorted(g.name for g in new_groups) if new_groups is not None else before["groups"],
        "users": sorted(u.username for u in new_users) if new_users is not None else before["users"],
    }
    if after == before:
        return FlagChange(flag, before, after, notes=["Nothing to change: the flag already has these settings."])

    meta = getattr(flag, "meta", None)
    switching_off = bool(meta and meta.affects_personalization) and narrows(before, after)
    action = DISABLE_PERSONALIZATION if switching_off else CHANGE
    context = dict(context or {})
    decision = policy.require(actor, action, flag, context)

    if decision.needs_approval:
        requested = {
            "everyone": None if everyone is KEEP else everyone,
            "percent": None if percent is KEEP else after["percent"],
            "groups": after["groups"] if groups is not KEEP else None,
            "users": after["users"] if users is not KEEP else None,
            "keep": [
                k
                for k, v in (("everyone", everyone), ("percent", percent), ("groups", groups), ("users", users))
                if v is KEEP
            ],
        }
        with transaction.atomic():
            request = approval_request_create(
                actor=actor,
                action=action,
                target=flag,
                summary=f"Switch off the personalization flag {flag.name!r} ({_describe(before, after)})",
                change={"flag": flag.name, "set": requested, "before": before, "after": after, "context": context},
                decision=decision,
                fingerprint=flag_fingerprint(flag),
            )
        return FlagChange(flag, before, after, approval=request)

    if switching_off and decision.rule != "system_actor" and not context.get("approved_request"):
        reason = (
            f"Flags are global: switching off {flag.name!r} changes what customers see in every environment, "
            f"and {actor.environment.slug} has no active approval policy for it."
        )
        with transaction.atomic():
            audit.record(actor, action, flag, outcome=Outcome.DENIED, reasons=[reason])
        raise PersonalizationFlagNeedsApproval(reason)

    token = _in_service.set(True)
    try:
        with transaction.atomic():
            if everyone is not KEEP:
                flag.everyone = everyone
            flag.percent = new_percent
            flag.save()
            if new_groups is not None:
                flag.groups.set(new_groups)
            if new_users is not None:
                flag.users.set(new_users)
            _announce(actor, flag, before, after, approval=context.get("approved_request"))
            audit.record(
                actor,
                action,
                flag,
                decision=decision,
                changes={"before": before, "after": after},
                approval_refs=approval_refs or [],
            )
    finally:
        _in_service.reset(token)
    # waffle flushes its cache on commit; flush now too, so this process (and a test in
    # one transaction) reads the new settings at once.
    flag.flush()
    return FlagChange(flag, before, after, changed=True)


def _describe(before: dict[str, Any], after: dict[str, Any]) -> str:
    parts = []
    for key in ("everyone", "percent", "groups", "users"):
        if before[key] != after[key]:
            parts.append(f"{key} {before[key]!r} → {after[key]!r}")
    return ", ".join(parts) or "no change"


def _announce(actor: Actor, instance: Any, before: dict[str, Any], after: dict[str, Any], approval: Any = None) -> None:
    """flag.changed in every environment: a flag is global, so each one's subscribers hear of it."""
    name = getattr(instance, "name", str(instance))
    data = {
        "kind": instance._meta.model_name,
        "name": name,
        "before": before,
        "after": after,
        "by": actor.label,
        "door": actor.door,
        "changed_from": actor.environment.slug,
        "approval_request": approval,
    }
    for environment in Environment.objects.order_by("id"):
        outbox.emit("flag.changed", instance, data, environment=environment)


def _execute(execution: Execution) -> dict[str, Any]:
    """The executor of an approved personalization switch-off: the requested change, by
    the requester, with the approvals on its audit event."""
    change = execution.change
    wanted = change.get("set") or {}
    keep = set(wanted.get("keep") or [])
    kwargs = {key: (KEEP if key in keep else wanted.get(key)) for key in ("everyone", "percent", "groups", "users")}
    outcome = flag_set(
        actor=execution.actor,
        flag_name=change["flag"],
        context=execution.context,
        approval_refs=execution.approval_refs,
        **kwargs,
    )
    return {"flag": outcome.flag.name, "changed": outcome.changed, "after": outcome.after}


register_executor(DISABLE_PERSONALIZATION, _execute, fingerprint=flag_fingerprint)


# --- the safety net: changes that bypass flag_set ----------------------------------------


def _request() -> Any:
    from simple_history.models import HistoricalRecords

    return getattr(HistoricalRecords.context, "request", None)


def _bypass_actor() -> Actor:
    """Who made a change outside flag_set: the signed-in admin of the current request
    (door `admin`), or the system at a shell (door `cli`)."""
    request = _request()
    user = getattr(request, "user", None)
    if request is None or user is None or not user.is_authenticated:
        return Actor.system(_default_environment(), door=Door.CLI)
    try:
        from governance.access.selectors import environment_for_session

        environment = environment_for_session(request)
    except Exception:
        environment = _default_environment()
    return Actor(
        user=user,
        environment=environment,
        door=Door.ADMIN,
        ip=client_ip(request),
        request_id=getattr(request, "request_id", ""),
    )


def _default_environment() -> Environment:
    from django.conf import settings

    return (
        Environment.objects.filter(slug=settings.DEFAULT_ENVIRONMENT).first()
        or Environment.objects.order_by("id").first()
    )  # type: ignore[return-value]


def _record_bypass(instance: Any, before: dict[str, Any] | None, after: dict[str, Any] | None, what: str) -> None:
    actor = _bypass_actor()
    if actor.environment is None:
        logger.warning("flag %s changed with no environment to audit it in", instance)
        return
    with transaction.atomic():
        _announce(actor, instance, before or {}, after or {})
        audit.record(
            actor,
            CHANGE,
            instance,
            reasons=[f"{what} outside the flag service (through the {actor.door} door)."],
            changes={"before": before, "after": after},
        )


def _on_pre_save(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw or _in_service.get() or instance.pk is None:
        return
    stored = sender.objects.filter(pk=instance.pk).first()
    instance._marketerapi_before = _snapshot_any(stored) if stored is not None else None


def _on_post_save(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if raw or _in_service.get():
        return
    before = None if created else getattr(instance, "_marketerapi_before", None)
    after = _snapshot_any(instance)
    if before == after:
        return  # saved without a change (e.g. the admin's "Save" on an untouched form)
    _record_bypass(instance, before, after, "Created" if created else "Changed")


def _on_post_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    if _in_service.get():
        return
    before = {"name": getattr(instance, "name", "")}
    _record_bypass(instance, before, None, "Deleted")


def _on_m2m_changed(sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: Any, **kw: Any) -> None:
    if _in_service.get() or action not in ("post_add", "post_remove", "post_clear"):
        return
    if action != "post_clear" and not pk_set:
        return
    verb = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}[action]
    flags = [instance] if not reverse else list(Flag.objects.filter(pk__in=pk_set or []))
    for flag in flags:
        members = sorted(str(m) for m in model.objects.filter(pk__in=pk_set or [])) if not reverse else [str(instance)]
        relation = "groups" if sender is Flag.groups.through else "users"
        _record_bypass(flag, {relation: {verb: members}}, flag_snapshot(flag), f"{relation.capitalize()} {verb}")


def connect_signals() -> None:
    """Connect the safety net (GovernanceConfig.ready)."""
    # FlagMeta is not here: its changes go through config_services.flag_meta_save, which
    # audits them (`flag.meta_change`), and simple-history keeps its field history.
    for model in (Flag, Switch, Sample):
        uid = f"governance.flag_audit.{model._meta.model_name}"
        pre_save.connect(_on_pre_save, sender=model, dispatch_uid=f"{uid}.pre")
        post_save.connect(_on_post_save, sender=model, dispatch_uid=f"{uid}.post")
        post_delete.connect(_on_post_delete, sender=model, dispatch_uid=f"{uid}.delete")
    m2m_changed.connect(_on_m2m_changed, sender=Flag.groups.through, dispatch_uid="governance.flag_audit.groups")
    m2m_changed.connect(_on_m2m_changed, sender=Flag.users.through, dispatch_uid="governance.flag_audit.users")
