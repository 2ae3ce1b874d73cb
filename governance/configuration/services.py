"""Writes for the platform's configuration, made by admins (mostly in the admin site):
environments and their change windows, approval policies, quota policies, teams, and
people — their names, email and password, and their roles, teams and access.

Like every service, each asks the policy engine once and writes one audit event (with a
before/after summary) in the transaction of the change; the admin site, `seed_demo` and
the commands only build the actor and call them. The validators
(governance/configuration/validators.py) are shared with the admin forms, so a form
refuses a bad value with the same sentence the service would raise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction

from governance import policy
from governance.actors import Actor
from governance.audit import trail as audit
from governance.configuration.errors import ImmutableField, InvalidConfig, RoleGroupReadOnly, TeamIsARole
from governance.configuration.validators import (
    check_action_name,
    check_approval_action,
    check_change_windows,
    check_condition,
    check_quota_subject,
    check_steps,
    check_time_zone,
)
from governance.models import ApprovalPolicy, Environment, Outcome, QuotaPolicy
from governance.roles import ADMIN, ROLE_NAMES
from marketerapi.problems import InvalidInput

# What each write's audit event shows before and after.
ENVIRONMENT_FIELDS = ("slug", "name", "purpose", "data_kind", "time_zone", "change_windows")
APPROVAL_POLICY_FIELDS = ("environment", "action", "metric", "threshold", "steps", "description", "is_active")
QUOTA_POLICY_FIELDS = (
    "name",
    "action",
    "description",
    "period",
    "limit",
    "environment",
    "role",
    "user",
    "token",
    "is_active",
)
USER_FIELDS = ("username", "first_name", "last_name", "email")


def _invalid(exc: InvalidConfig, pointer: str, code: str) -> InvalidInput:
    return InvalidInput(
        str(exc),
        code=code,
        errors=[{"pointer": pointer, "code": code, "message": str(exc), "hint": "Fix the value and save again."}],
    )


# --- helpers ------------------------------------------------------------------------------


def _refuse(actor: Actor, action: str, target: Any, rule: str, reason: str, hint: str) -> policy.PolicyDenied:
    """A refusal of this module's own rules, audited like the policy engine's denials (in its
    own transaction; `denial` lets a caller whose transaction rolls back record it again)."""
    decision = policy.Decision(policy.DENY, rule, [reason], hint=hint)
    with transaction.atomic():
        audit.record(actor, action, target, outcome=str(Outcome.DENIED), decision=decision)
    error = policy.PolicyDenied(reason, hint=hint, rule=rule)
    error.denial = (actor, action, target, decision)  # type: ignore[attr-defined]
    return error


def _snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = str(value) if hasattr(value, "_meta") else value
    return out


def _stored(model: Any, pk: Any, fields: tuple[str, ...]) -> dict[str, Any] | None:
    if pk is None:
        return None
    stored = model.objects.select_for_update().filter(pk=pk).first()
    return _snapshot(stored, fields) if stored is not None else None


def _diff(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    if before is None:
        return {"before": None, "after": after}
    changed = [k for k in after if before.get(k) != after[k]]
    return {"before": {k: before.get(k) for k in changed}, "after": {k: after[k] for k in changed}}


# --- environments -------------------------------------------------------------------------


def environment_save(*, actor: Actor, environment: Environment) -> Environment:
    """Add an environment or change one (name, purpose, time zone, change windows).

    The slug (token prefixes) and data kind (a synthetic environment is a sandbox, which
    never asks for approval) are set once, when the environment is added.
    """
    creating = environment.pk is None
    decision = policy.require(actor, "environment.create" if creating else "environment.change", environment)
    try:
        check_time_zone(environment.time_zone)
        environment.change_windows = check_change_windows(environment.change_windows)
    except InvalidConfig as exc:
        raise _invalid(exc, "/change_windows", "invalid_environment") from None
    with transaction.atomic():
        before = _stored(Environment, environment.pk, ENVIRONMENT_FIELDS)
        if before is not None and (before["slug"] != environment.slug or before["data_kind"] != environment.data_kind):
            raise ImmutableField(
                "An environment's slug and data kind are set when it is added.",
                hint="Add a new environment instead.",
            )
        environment.save()
        # A new environment's first audit event opens its own chain.
        recorder = dataclasses.replace(actor, environment=environment) if creating else actor
        audit.record(
            recorder,
            "environment.create" if creating else "environment.change",
            environment,
            decision=decision,
            changes=_diff(before, _snapshot(environment, ENVIRONMENT_FIELDS)),
        )
    return environment


# --- approval policies --------------------------------------------------------------------


def approval_policy_save(*, actor: Actor, approval_policy: ApprovalPolicy) -> ApprovalPolicy:
    """Add or change an approval policy of the actor's environment (the policy's own)."""
    creating = approval_policy.pk is None
    decision = policy.require(
        actor, "approval_policy.create" if creating else "approval_policy.change", approval_policy
    )
    try:
        approval_policy.steps = check_steps(approval_policy.steps)
    except InvalidConfig as exc:
        raise _invalid(exc, "/steps", "invalid_steps") from None
    try:
        check_approval_action(approval_policy.action)
        check_condition(approval_policy.metric, approval_policy.threshold)
    except InvalidConfig as exc:
        raise _invalid(exc, "/action", "invalid_approval_policy") from None
    with transaction.atomic():
        before = _stored(ApprovalPolicy, approval_policy.pk, APPROVAL_POLICY_FIELDS)
        approval_policy.save()
        audit.record(
            actor,
            "approval_policy.create" if creating else "approval_policy.change",
            approval_policy,
            decision=decision,
            changes=_diff(before, _snapshot(approval_policy, APPROVAL_POLICY_FIELDS)),
        )
    return approval_policy


# --- quota policies -----------------------------------------------------------------------


def quota_policy_save(*, actor: Actor, quota_policy: QuotaPolicy) -> QuotaPolicy:
    """Add or change a quota policy: for one role, user or token, or the default for everyone."""
    creating = quota_policy.pk is None
    decision = policy.require(actor, "quota_policy.create" if creating else "quota_policy.change", quota_policy)
    try:
        check_quota_subject(quota_policy.role, quota_policy.user_id, quota_policy.token_id)
        check_action_name(quota_policy.action)
    except InvalidConfig as exc:
        raise _invalid(exc, "/role", "invalid_quota_policy") from None
    with transaction.atomic():
        before = _stored(QuotaPolicy, quota_policy.pk, QUOTA_POLICY_FIELDS)
        quota_policy.save()
        audit.record(
            actor,
            "quota_policy.create" if creating else "quota_policy.change",
            quota_policy,
            decision=decision,
            changes=_diff(before, _snapshot(quota_policy, QUOTA_POLICY_FIELDS)),
        )
    return quota_policy


# --- teams and people ---------------------------------------------------------------------


def team_save(*, actor: Actor, team: Group) -> Group:
    """Create or rename a team (a group that owns audiences and campaigns; not a role)."""
    creating = team.pk is None
    name = (team.name or "").strip()
    if name in ROLE_NAMES:
        raise TeamIsARole(
            f"{name!r} is a role; teams and roles are different groups.",
            hint="Choose another name for the team.",
        )
    if not creating and Group.objects.filter(pk=team.pk, name__in=ROLE_NAMES).exists():
        raise RoleGroupReadOnly(
            "Role groups are defined in governance/roles.py and restored on every migrate.",
            hint="Change governance/roles.py instead.",
        )
    decision = policy.require(actor, "team.create" if creating else "team.change")
    with transaction.atomic():
        before = _stored(Group, team.pk, ("name",))
        team.name = name
        team.save()
        audit.record(
            actor,
            "team.create" if creating else "team.change",
            team,
            decision=decision,
            changes=_diff(before, {"name": name}),
        )
    return team


def user_create(*, actor: Actor, user: User) -> User:
    """Add a person (no role, no team yet: the change form, or user_access_set, gives them).
    `user` is unsaved, with its username, names, email and password (hashed) set."""
    decision = policy.require(actor, "user.create")
    with transaction.atomic():
        user.save()
        audit.record(
            actor,
            "user.create",
            user,
            decision=decision,
            changes={"after": {"username": user.get_username(), "is_staff": user.is_staff}},
        )
    return user


def user_change(*, actor: Actor, user: User) -> User:
    """Save a person's username, names and email as set on `user` (nothing else of it);
    the audit event lists what changed. Nothing changed: nothing is written."""
    stored = User.objects.filter(pk=user.pk).values(*USER_FIELDS).first()
    after = _snapshot(user, USER_FIELDS)
    if stored == after:
        return user
    decision = policy.require(actor, "user.change", user)
    with transaction.atomic():
        before = _stored(User, user.pk, USER_FIELDS)
        user.save(update_fields=list(USER_FIELDS))
        audit.record(actor, "user.change", user, decision=decision, changes=_diff(before, after))
    return user


def user_password_set(*, actor: Actor, user: User, password: str | None) -> User:
    """Set a person's password, or with None take password sign-in away from them. The
    audit event says that it changed, never what it is."""
    decision = policy.require(actor, "user.change", user)
    with transaction.atomic():
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.save(update_fields=["password"])
        audit.record(
            actor,
            "user.change",
            user,
            decision=decision,
            changes={"after": {"password": "set" if password is not None else "unusable"}},
        )
    return user


def _access_of(user: User) -> dict[str, Any]:
    names = sorted(user.groups.values_list("name", flat=True)) if user.pk else []
    return {
        "roles": [n for n in names if n in ROLE_NAMES],
        "teams": [n for n in names if n not in ROLE_NAMES],
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
    }


def user_access_set(
    *,
    actor: Actor,
    user: User,
    roles: list[str],
    teams: list[str],
    is_active: bool,
    is_staff: bool,
    is_superuser: bool | None = None,
) -> User:
    """Set a person's roles, teams and access flags; the audit event lists what changed.
    Compared with what is stored (not with `user`, which a form may have changed already);
    nothing changed: nothing is written.

    Only a superuser makes someone a superuser, and no admin takes away their own admin
    role or access (another admin does, so the platform always keeps one).
    """
    stored = User.objects.get(pk=user.pk)
    if is_superuser is None:
        is_superuser = stored.is_superuser
    before = _access_of(stored)
    wanted = {
        "roles": sorted(set(roles)),
        "teams": sorted(set(teams)),
        "is_active": is_active,
        "is_staff": is_staff,
        "is_superuser": is_superuser,
    }
    if wanted == before:
        user.is_active, user.is_staff, user.is_superuser = is_active, is_staff, is_superuser
        return user
    decision = policy.require(actor, "user.access_change")
    unknown = sorted(set(roles) - set(ROLE_NAMES))
    if unknown:
        raise InvalidInput(f"Unknown role(s): {', '.join(unknown)}.", hint=f"Use any of: {', '.join(ROLE_NAMES)}.")
    role_like = sorted(set(teams) & set(ROLE_NAMES))
    if role_like:
        raise InvalidInput(f"{', '.join(role_like)} is a role, not a team.", hint="Give roles as roles.")
    groups = list(Group.objects.filter(name__in=[*roles, *teams]))
    missing = sorted(set(teams) - {g.name for g in groups})
    if missing:
        raise InvalidInput(f"Unknown team(s): {', '.join(missing)}.", hint="Create the team first.")
    acting = getattr(actor.user, "pk", None)
    if is_superuser and not stored.is_superuser and not getattr(actor.user, "is_superuser", False):
        raise _refuse(
            actor,
            "user.access_change",
            user,
            "superuser_escalation",
            "Only a superuser makes someone a superuser.",
            "Give the admin role instead; it is what the platform checks.",
        )
    if acting == user.pk and (
        (ADMIN in actor.roles and ADMIN not in roles) or not is_active or (stored.is_staff and not is_staff)
    ):
        raise _refuse(
            actor,
            "user.access_change",
            user,
            "self_lockout",
            "You cannot take away your own admin role or access.",
            "Ask another admin, so that the platform always keeps one.",
        )
    with transaction.atomic():
        user.is_active, user.is_staff, user.is_superuser = is_active, is_staff, is_superuser
        user.save(update_fields=["is_active", "is_staff", "is_superuser"])
        user.groups.set(groups)
        after = _access_of(user)
        audit.record(actor, "user.access_change", user, decision=decision, changes=_diff(before, after))
    # The actor's cached roles (governance.actors) may be this user's; drop them.
    if hasattr(user, "_marketerapi_roles"):
        del user._marketerapi_roles
    return user
