"""Writes of audience definitions: create, update, delete or archive, share, promote.

Every service asks the policy engine before its transaction (a refusal is audited in
its own transaction and raised), then, inside one transaction, makes the change and
records exactly one audit event with a before/after summary as its last write. The API,
the admin site and any future door call these functions; none has logic of its own.

- Deleting a **draft** deletes it. Deleting a **published** audience archives it and
  follows the environment's approval policy (`audience.archive`: two approvals in pilot
  and production) through `governance.approvals.request_or_run`: the outcome is the one
  `ActionOutcome` (the archived audience, or the request filed); the approved request
  runs `audience_archive` with the requester as actor. Nothing is deleted or archived
  while something uses it: other audiences' `in_audience` conditions, and whatever
  registers a check with `register_in_use_check` (campaigns will).
- Sharing is for the owning team or an admin only (a hook on `audience.share`); a share
  of `change` lets another team or person edit and publish.
- Promoting copies the definition (never the members) into another environment as a
  draft, mapping `in_audience` references by audience name.
- Copying makes a draft of the definition in the same environment, owned by one of the
  actor's teams: how a marketer builds on another team's audience they may not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.utils import timezone
from guardian.models import GroupObjectPermission, UserObjectPermission
from guardian.shortcuts import get_group_perms, get_user_perms

from audiences.definitions.checks import Problems, check_text, invalid, picks_any_team, resolve_team
from audiences.definitions.errors import (
    AudienceArchived,
    AudienceBuilding,
    AudienceInUse,
    AudienceNameTaken,
    OwnerChangedByTransfer,
    ShareNotFound,
    UnknownEnvironment,
)
from audiences.definitions.selectors import audience_copy_name, audience_queryset, audiences_referring_to, teams
from audiences.models import Audience, AudienceState, AudienceVersion, RegionalRestriction, VersionState
from audiences.profiles.pii_filters import rules_pii_guard
from audiences.rules import rule_references, rules_check, rules_check_or_raise, rules_pointer
from governance import outbox, policy
from governance.access import objectperms
from governance.actors import Actor
from governance.approvals import ActionOutcome, Execution, fingerprint_of, request_or_run
from governance.audit import trail as audit
from governance.models import DataKind, Environment, Outcome
from governance.roles import ADMIN
from integrations.jobs import services as jobs
from integrations.models import JobState
from marketerapi.problems import Conflict, NotFound

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, User

EDITABLE_FIELDS: tuple[str, ...] = ("name", "owner_team", "channel", "purpose", "description", "rules")
REFERENCE_CODES = frozenset({"audience_not_found", "audience_not_published", "audience_archived", "audience_cycle"})


# --- helpers --------------------------------------------------------------------------------


def summary(audience: Audience) -> dict[str, Any]:
    """What an audit event says about an audience before and after a change."""
    return {
        "name": audience.name,
        "owner_team": audience.owner_team.name if audience.owner_team_id else None,
        "channel": audience.channel,
        "purpose": audience.purpose,
        "description": audience.description,
        "rules": audience.rules,
        "state": audience.state,
    }


def _name_taken(environment: Environment, name: str, *, hint: str | None = None) -> AudienceNameTaken:
    existing = Audience.objects.filter(environment=environment, name=name).values_list("pk", flat=True).first()
    return AudienceNameTaken(
        f"{environment.slug} already has an audience named {name!r}" + (f" (id {existing})." if existing else "."),
        hint=hint or "Choose another name, or edit the existing audience.",
        errors=[
            {
                "pointer": "/name",
                "code": "name_taken",
                "message": f"{name!r} is taken in {environment.slug}.",
                "hint": hint or "Choose another name.",
            }
        ],
        existing_audience_id=existing,
    )


def _ensure_name_free(
    environment: Environment, name: str, *, exclude: int | None = None, hint: str | None = None
) -> None:
    clash = Audience.objects.filter(environment=environment, name=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        raise _name_taken(environment, name, hint=hint)


def _save_new(audience: Audience, *, hint: str | None = None) -> Audience:
    try:
        # A savepoint: a concurrent insert of the same name fails here without breaking
        # the caller's transaction.
        with transaction.atomic():
            audience.save(force_insert=True)
    except IntegrityError:
        raise _name_taken(audience.environment, audience.name, hint=hint) from None
    return audience


# --- create and update ------------------------------------------------------------------------


def audience_create(
    *,
    actor: Actor,
    name: str,
    channel: str,
    purpose: str,
    description: str,
    rules: Any,
    owner_team: str | None = None,
) -> Audience:
    """Create a draft audience in the actor's environment, owned by one of the actor's teams.

    Refusals: 403 (role), 422 `invalid_input` (team, metadata), 422 `invalid_rules` (every
    problem with its pointer), 409 `audience_name_taken`.
    """
    decision = policy.require(actor, "audience.create")
    environment = actor.environment
    # Every bad value and every problem of the rules at once (one 422), before a conflict.
    found = Problems()
    text = {"name": name, "channel": channel, "purpose": purpose, "description": description}
    checked = found.check(check_text, text)
    chosen = found.check(resolve_team, actor, owner_team)
    found.rules(environment, rules)
    found.raise_all()
    rules_pii_guard(
        actor=actor, environment=environment, rules=rules, purpose="audience.create", audit_denial="audience.create"
    )
    values, team = cast("dict[str, Any]", checked), cast("Group", chosen)
    _ensure_name_free(environment, values["name"])
    now = timezone.now()
    with transaction.atomic():
        audience = _save_new(
            Audience(
                environment=environment,
                owner_team=team,
                rules=rules,
                state=AudienceState.DRAFT,
                # Actor.user is typed AbstractBaseUser; the user model is auth.User.
                created_by=cast("User | None", actor.user),
                created_at=now,
                updated_at=now,
                **values,
            )
        )
        audit.record(actor, "audience.create", audience, decision=decision, changes={"after": summary(audience)})
    return audience_queryset().get(pk=audience.pk)


def _refuse_owner_change(actor: Actor, audience: Audience, team: Any) -> None:
    """An edit never changes the owner: naming the current team is harmless (a form sends
    what it shows), any other team is a transfer (`audience_transfer`), refused here with a
    hint naming it and audited as a denied `audience.transfer` — a share of change must not
    take an audience from its owners by editing it."""
    if team is None or str(team).strip() == audience.owner_team.name:
        return
    hint = OwnerChangedByTransfer.hint.replace("{id}", str(audience.pk))
    message = (
        f"An edit does not change the owner of {audience.name!r} (the team {audience.owner_team.name!r}); "
        "a transfer does."
    )
    with transaction.atomic():
        audit.record(
            actor,
            "audience.transfer",
            audience,
            outcome=Outcome.DENIED,
            reasons=[message],
            changes={"refused": {"owner_team": str(team)[:150], "through": "audience.edit"}},
        )
    raise OwnerChangedByTransfer(
        message,
        hint=hint,
        errors=[{"pointer": "/owner_team", "code": "owner_team_read_only", "message": message, "hint": hint}],
    )


def audience_update(*, actor: Actor, audience: Audience, **changes: Any) -> Audience:
    """Change an audience's definition: any of name, channel, purpose, description, rules.
    `owner_team` may be sent only unchanged: the owner changes by `audience_transfer` (400
    `owner_team_read_only` otherwise, audited). A published audience keeps its live version
    until it is published again. Needs the owning team, a share of change, or the admin role
    (403 names the team).
    """
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValueError(f"audience_update does not change {', '.join(unknown)}")
    decision = policy.require(actor, "audience.edit", audience)
    if audience.state == AudienceState.ARCHIVED:
        raise AudienceArchived(f"{audience.name!r} is archived and cannot be edited.")
    if "owner_team" in changes:
        _refuse_owner_change(actor, audience, changes.pop("owner_team"))
    # Every bad value and every problem of the rules at once (one 422), before a conflict.
    found = Problems()
    values = found.check(check_text, {k: v for k, v in changes.items() if k != "rules"}) or {}
    if "rules" in changes:
        found.rules(audience.environment, changes["rules"], self_id=audience.pk)
        values["rules"] = changes["rules"]
    found.raise_all()
    if "rules" in values:
        rules_pii_guard(
            actor=actor,
            environment=audience.environment,
            rules=values["rules"],
            purpose="audience.edit",
            target=audience,
            audit_denial="audience.edit",
        )
    if "name" in values:
        _ensure_name_free(audience.environment, values["name"], exclude=audience.pk)

    with transaction.atomic():
        locked = Audience.objects.select_for_update().select_related("owner_team").get(pk=audience.pk)
        if locked.state == AudienceState.ARCHIVED:
            raise AudienceArchived(f"{locked.name!r} was archived meanwhile and cannot be edited.")
        before = summary(locked)
        for name, value in values.items():
            setattr(locked, name, value)
        after = summary(locked)
        changed = [name for name in before if before[name] != after[name]]
        if not changed:
            return audience_queryset().get(pk=locked.pk)
        locked.updated_at = timezone.now()
        update_fields = [("owner_team" if name == "owner_team" else name) for name in changed] + ["updated_at"]
        try:
            with transaction.atomic():
                locked.save(update_fields=update_fields)
        except IntegrityError:
            raise _name_taken(locked.environment, locked.name) from None
        audit.record(
            actor,
            "audience.edit",
            locked,
            decision=decision,
            changes={
                "fields": changed,
                "before": {name: before[name] for name in changed},
                "after": {name: after[name] for name in changed},
            },
        )
    return audience_queryset().get(pk=locked.pk)


# --- delete and archive ------------------------------------------------------------------------

InUseCheck = Callable[[Audience], list[str]]
_IN_USE_CHECKS: list[InUseCheck] = []


def register_in_use_check(check: InUseCheck) -> None:
    """Add a check that names what uses an audience (e.g. "campaign 'Spring sale' (active)").

    The campaigns app registers one when it arrives: an audience a campaign uses is then
    neither deleted nor archived. Registering the same function twice is harmless.
    """
    if check not in _IN_USE_CHECKS:
        _IN_USE_CHECKS.append(check)


def audience_uses(audience: Audience) -> list[str]:
    """What uses the audience now: other audiences' rules, and every registered check."""
    uses = [f"audience {name!r} (in_audience)" for name in audiences_referring_to(audience)]
    for check in _IN_USE_CHECKS:
        uses.extend(check(audience))
    return uses


def _refuse_if_in_use(audience: Audience, verb: str) -> None:
    uses = audience_uses(audience)
    if uses:
        raise AudienceInUse(
            f"{audience.name!r} cannot be {verb}d while it is used by: {'; '.join(uses)}.",
            used_by=uses,
        )


def audience_fingerprint(audience: Audience) -> str:
    """What approvers of an archive approved: the audience's name, state and live version."""
    return fingerprint_of("audiences.audience", audience.pk, audience.name, audience.state, audience.live_version_id)


def _forget_shares(audience: Audience) -> None:
    content_type = ContentType.objects.get_for_model(Audience)
    UserObjectPermission.objects.filter(content_type=content_type, object_pk=str(audience.pk)).delete()
    GroupObjectPermission.objects.filter(content_type=content_type, object_pk=str(audience.pk)).delete()


def audience_delete(*, actor: Actor, audience: Audience) -> ActionOutcome[Audience | None]:
    """DELETE /audiences/{id}: a draft is deleted (the outcome's result is None); a
    published audience is archived (`audience_archive`: the result is the archived
    audience, or an approval request is filed where the environment's policy asks for one)."""
    if audience.state == AudienceState.ARCHIVED:
        # Permission first, then state: who may not archive it learns 403, not that it is archived.
        policy.require(actor, "audience.archive", audience)
        raise AudienceArchived(f"{audience.name!r} is archived already.", hint="There is nothing left to do.")
    if audience.state != AudienceState.DRAFT or audience.live_version_id is not None:
        archived = audience_archive(actor=actor, audience=audience)
        return ActionOutcome(result=archived.result, approval=archived.approval, warnings=archived.warnings)
    decision = policy.require(actor, "audience.delete", audience)
    _refuse_if_in_use(audience, "delete")
    with transaction.atomic():
        locked = Audience.objects.select_for_update().select_related("owner_team").get(pk=audience.pk)
        if locked.state != AudienceState.DRAFT or locked.live_version_id is not None:
            raise Conflict(f"{locked.name!r} was published meanwhile.", hint="Send DELETE again: it archives it now.")
        _refuse_if_building(locked)
        target = (Audience._meta.label_lower, locked.pk, locked.name)
        before = summary(locked)
        _forget_shares(locked)
        locked.delete()
        audit.record(actor, "audience.delete", target, decision=decision, changes={"before": before})
    return ActionOutcome(result=None)


def _refuse_if_building(locked: Audience) -> None:
    """Under the audience's row lock (which the swap takes before a version goes live): a
    first publish still queued is cancelled with the draft (a conditional UPDATE, so a
    worker that claimed it meanwhile wins and the delete is refused); one a worker is
    building refuses the delete with 409 `audience_building`."""
    for version in AudienceVersion.objects.filter(audience=locked, state=VersionState.BUILDING).select_related("job"):
        job = version.job
        if job is None or job.state not in (JobState.QUEUED, JobState.RUNNING):
            continue
        if job.state == JobState.QUEUED and jobs.job_cancel(job):
            note = jobs.note(
                "audience_deleted",
                f"Version {version.number} was not built: the draft {locked.name!r} was deleted first.",
                "",
            )
            jobs.job_amend(job.pk, lambda row, note=note: setattr(row, "errors", [note]))
            continue
        raise AudienceBuilding(
            f"Version {version.number} of {locked.name!r} is being built (job {job.pk}); deleting the draft now "
            "would leave a published audience without a definition.",
            hint=f"Wait for job {job.pk} to finish (GET /api/v1/jobs/{job.pk}), then send DELETE again: a published "
            "audience is archived.",
            job_id=job.pk,
        )


def audience_archive(
    *,
    actor: Actor,
    audience: Audience,
    context: dict[str, Any] | None = None,
    approval_refs: list[dict[str, Any]] | None = None,
) -> ActionOutcome[Audience]:
    """Archive a published audience, or file the approval request the environment's policy
    asks for (pilot and production: an approver and a developer or admin). The approved
    request runs this again as the requester (`context` carries `approved_request`)."""
    context = dict(context or {})
    decision = policy.require(actor, "audience.archive", audience, context)
    _refuse_if_in_use(audience, "archive")
    return request_or_run(
        actor=actor,
        action="audience.archive",
        target=audience,
        decision=decision,
        summary=f"Archive the published audience {audience.name!r}",
        change={"audience_id": audience.pk, "name": audience.name, "context": context},
        fingerprint=audience_fingerprint(audience),
        run=lambda: _archive(actor, audience, decision, approval_refs or []),
    )


def _archive(
    actor: Actor, audience: Audience, decision: policy.Decision, approval_refs: list[dict[str, Any]]
) -> Audience:
    with transaction.atomic():
        locked = Audience.objects.select_for_update().select_related("owner_team").get(pk=audience.pk)
        if locked.state == AudienceState.ARCHIVED:
            raise AudienceArchived(f"{locked.name!r} is archived already.", hint="There is nothing left to do.")
        before = locked.state
        locked.state = AudienceState.ARCHIVED
        locked.updated_at = timezone.now()
        locked.save(update_fields=["state", "updated_at"])
        approval = approval_refs[0]["approval_request"] if approval_refs else None
        outbox.emit(
            "audience.archived",
            locked,
            {
                "id": locked.pk,
                "name": locked.name,
                "channel": locked.channel,
                "owner_team": locked.owner_team.name,
                "live_version": locked.live_version_id,
                "by": actor.label,
                "approval_request": approval,
            },
        )
        audit.record(
            actor,
            "audience.archive",
            locked,
            decision=decision,
            changes={"before": {"state": before}, "after": {"state": locked.state}},
            approval_refs=approval_refs,
        )
    return audience_queryset().get(pk=locked.pk)


def execute_archive(execution: Execution) -> dict[str, Any]:
    """The executor of an approved archive: the requester archives, the approvals recorded."""
    audience = execution.target
    if audience is None:
        raise NotFound("The audience no longer exists.", code="audience_not_found")
    archived = audience_archive(
        actor=execution.actor,
        audience=audience,
        context=execution.context,
        approval_refs=execution.approval_refs,
    ).result
    assert archived is not None  # an approved request runs (the approval rule is skipped)
    return {"audience": archived.pk, "state": archived.state}


# --- sharing ---------------------------------------------------------------------------------


def share_needs_owner(
    actor: Actor, spec: policy.Action, target: Any, context: dict[str, Any]
) -> policy.Decision | None:
    """Only the owning team or an admin shares or transfers (`audience.share`,
    `audience.transfer`): a share of change lets people edit, not pass the audience on nor
    take it from its owners."""
    if not isinstance(target, Audience) or ADMIN in actor.roles:
        return None
    # Actor.user is typed AbstractBaseUser (no groups); the user model is auth.User.
    if actor.user is not None and actor.user.groups.filter(pk=target.owner_team_id).exists():  # type: ignore[attr-defined]
        return None
    team = target.owner_team.name
    if spec.name == "audience.transfer":
        return policy.Decision(
            policy.DENY,
            "object_permission",
            [
                f"{target} is owned by the team {team!r}; only that team or an admin may hand it to another team "
                "(a share of change lets you edit it, not take it)."
            ],
            hint=f"Ask the {team} team (or an admin) to transfer it, or copy it into your team as a draft "
            f"(POST /api/v1/audiences/{target.pk}/copy).",
        )
    return policy.Decision(
        policy.DENY,
        "object_permission",
        [f"{target} is owned by the team {team!r}; only that team or an admin may share it."],
        hint=f"Ask the {team} team (or an admin) to share it.",
    )


# How strong an environment's controls are, by the data it holds: a sandbox's synthetic data
# has the weakest (developers edit and publish there freely), real data the strongest.
DATA_STRENGTH = {DataKind.SYNTHETIC: 0, DataKind.CONSTRAINED: 1, DataKind.REAL: 2}


def is_downward(source: Environment, target: Environment) -> bool:
    return DATA_STRENGTH.get(DataKind(target.data_kind), 0) < DATA_STRENGTH.get(DataKind(source.data_kind), 0)


def promote_not_down(actor: Actor, spec: policy.Action, target: Any, context: dict[str, Any]) -> policy.Decision | None:
    """Promote copies definitions upward (sandbox → pilot → production). Down into an
    environment with weaker controls (production → sandbox) it would copy production's
    definitions — its attribute names, its segments, its thresholds — where developers
    edit freely: only an admin may, and the audit event says it went down."""
    into = context.get("into")
    if not isinstance(target, Audience) or not isinstance(into, Environment) or ADMIN in actor.roles:
        return None
    if not is_downward(target.environment, into):
        return None
    return policy.Decision(
        policy.DENY,
        "promote_down",
        [
            f"{into.slug} ({into.data_kind} data) has weaker controls than {target.environment.slug} "
            f"({target.environment.data_kind} data): copying {target.environment.slug}'s definitions there would "
            "put them where fewer rules protect them."
        ],
        hint=f"Promote upward only (e.g. from {into.slug} into {target.environment.slug}); if a copy below is really "
        "needed, ask an admin to promote it.",
    )


def _grantee(team: str | None, user: str | None) -> tuple[str, Any]:
    if (team is None) == (user is None):
        raise invalid(
            "/team" if team is not None else "",
            "one_grantee",
            "Name either a team or a user, not both or neither.",
            'Send {"team": "retention", "level": "change"} or {"user": "ann", "level": "view"}.',
        )
    if team is not None:
        group = teams().filter(name=team).first()
        if group is None:
            raise invalid(
                "/team",
                "unknown_team",
                f"There is no team {team!r}.",
                "Teams are groups such as growth; roles such as analyst are not teams.",
            )
        return "team", group
    found = get_user_model().objects.filter(username=user, is_active=True).first()
    if found is None:
        raise invalid("/user", "unknown_user", f"There is no active user {user!r}.", "Check the username.")
    return "user", found


def _level_of(kind: str, grantee: Any, audience: Audience) -> str | None:
    perms = set(get_group_perms(grantee, audience) if kind == "team" else get_user_perms(grantee, audience))
    if "change_audience" in perms:
        return "change"
    if "view_audience" in perms:
        return "view"
    return None


def _grantee_name(kind: str, grantee: Any) -> str:
    return grantee.name if kind == "team" else grantee.get_username()


def audience_share(
    *, actor: Actor, audience: Audience, level: str, team: str | None = None, user: str | None = None
) -> Audience:
    """Share with a team or a user at `view` or `change` (replacing an earlier level)."""
    decision = policy.require(actor, "audience.share", audience)
    if level not in objectperms.SHARE_LEVELS:
        raise invalid("/level", "invalid_choice", f"{level!r} is not a share level.", "Use view or change.")
    kind, grantee = _grantee(team, user)
    if kind == "team" and grantee.pk == audience.owner_team_id:
        raise invalid(
            "/team",
            "already_owner",
            f"The team {grantee.name!r} owns the audience already.",
            "Share with another team or a person.",
        )
    with transaction.atomic():
        before = _level_of(kind, grantee, audience)
        if before == level:
            return audience
        objectperms.unshare(audience, grantee)
        objectperms.share(audience, grantee, level)
        audit.record(
            actor,
            "audience.share",
            audience,
            decision=decision,
            changes={
                "grantee": {kind: _grantee_name(kind, grantee)},
                "before": {"level": before},
                "after": {"level": level},
            },
        )
    return audience


def audience_unshare(*, actor: Actor, audience: Audience, team: str | None = None, user: str | None = None) -> Audience:
    """Take a share back from a team or a user."""
    decision = policy.require(actor, "audience.share", audience)
    kind, grantee = _grantee(team, user)
    with transaction.atomic():
        before = _level_of(kind, grantee, audience)
        if before is None:
            raise ShareNotFound(f"{audience.name!r} is not shared with the {kind} {_grantee_name(kind, grantee)!r}.")
        objectperms.unshare(audience, grantee)
        audit.record(
            actor,
            "audience.unshare",
            audience,
            decision=decision,
            changes={
                "grantee": {kind: _grantee_name(kind, grantee)},
                "before": {"level": before},
                "after": {"level": None},
            },
        )
    return audience


def audience_transfer(*, actor: Actor, audience: Audience, team: str) -> Audience:
    """Hand the audience to another team: the owning team or an admin only, never a share of
    change (a hook on `audience.transfer`). Any team may receive it; shares stay as they
    were, except a share to the new owning team, which ownership replaces. Refusals: 403
    (role, not the owners), 409 `audience_archived`, 422 `invalid_input` (unknown team, the
    team owns it already). Audited as `audience.transfer` with the owner before and after;
    no domain event (PRODUCT.md §9 lists none for it).
    """
    decision = policy.require(actor, "audience.transfer", audience)
    if audience.state == AudienceState.ARCHIVED:
        raise AudienceArchived(f"{audience.name!r} is archived and cannot change hands.")
    name = str(team or "").strip()
    group = teams().filter(name=name).first() if name else None
    if group is None:
        known = list(teams().order_by("name").values_list("name", flat=True))
        raise invalid(
            "/team",
            "unknown_team" if name else "required",
            f"There is no team {name!r}." if name else "Say which team receives the audience.",
            f"Use one of: {', '.join(known[:20]) or 'none'}. Teams are groups; roles such as analyst are not teams.",
        )
    if group.pk == audience.owner_team_id:
        raise invalid(
            "/team",
            "already_owner",
            f"The team {group.name!r} owns {audience.name!r} already.",
            "Name another team.",
        )
    with transaction.atomic():
        locked = Audience.objects.select_for_update().select_related("owner_team").get(pk=audience.pk)
        if locked.state == AudienceState.ARCHIVED:
            raise AudienceArchived(f"{locked.name!r} was archived meanwhile and cannot change hands.")
        before = locked.owner_team.name
        locked.owner_team = group
        locked.updated_at = timezone.now()
        locked.save(update_fields=["owner_team", "updated_at"])
        objectperms.unshare(locked, group)
        audit.record(
            actor,
            "audience.transfer",
            locked,
            decision=decision,
            changes={"before": {"owner_team": before}, "after": {"owner_team": group.name}},
        )
    return audience_queryset().get(pk=locked.pk)


# --- promote -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Promotion:
    audience: Audience
    unmapped: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)


def _map_references(audience: Audience, target: Environment) -> tuple[Any, list[dict[str, Any]]]:
    """The rules with each in_audience id replaced by the id of the audience of the same
    name in `target`; what has no namesake there is reported and left as it was."""
    refs = rule_references(audience.rules)
    if not refs:
        return audience.rules, []
    names = dict(
        Audience.objects.filter(environment_id=audience.environment_id, pk__in={ref for _, ref in refs}).values_list(
            "pk", "name"
        )
    )
    there = dict(
        Audience.objects.filter(environment=target, name__in=set(names.values()))
        .exclude(state=AudienceState.ARCHIVED)
        .values_list("name", "pk")
    )
    mapping = {ref: there[names[ref]] for ref in names if names[ref] in there}
    unmapped = []
    for pointer, ref in refs:
        if ref in mapping:
            continue
        name = names.get(ref)
        unmapped.append(
            {
                "pointer": rules_pointer(pointer),
                "audience_id": ref,
                "name": name,
                "hint": (
                    f"Promote {name!r} to {target.slug} first (or create an audience of that name there), then "
                    "edit this condition of the copy."
                    if name
                    else f"Audience {ref} does not exist in {audience.environment.slug}; remove this condition."
                ),
            }
        )
    return _replace_references(audience.rules, mapping), unmapped


def _replace_references(node: Any, mapping: dict[int, int]) -> Any:
    if isinstance(node, list):
        return [_replace_references(child, mapping) for child in node]
    if not isinstance(node, dict):
        return node
    out = {key: _replace_references(value, mapping) for key, value in node.items()}
    ref = node.get("in_audience")
    if isinstance(ref, int) and not isinstance(ref, bool) and ref in mapping:
        out["in_audience"] = mapping[ref]
    return out


def audience_promote(
    *,
    actor: Actor,
    audience: Audience,
    environment: str,
    name: str | None = None,
    owner_team: str | None = None,
) -> Promotion:
    """Copy the definition (not the members) into another environment as a draft.

    The actor must be allowed to create audiences there (the same person, acting in the
    target environment). `in_audience` references are mapped by name; what cannot be
    mapped stays as it was and is reported in `unmapped` (the copy's validate check then
    fails until it is fixed). The audit event is written in the target environment.
    """
    target = Environment.objects.filter(slug=str(environment)).first()
    policy.require(actor, "audience.promote", audience, {"into": target})
    if target is None:
        known = list(Environment.objects.order_by("id").values_list("slug", flat=True))
        raise UnknownEnvironment(
            f"There is no environment {environment!r}.",
            hint=f"Use one of: {', '.join(known)}.",
            errors=[
                {
                    "pointer": "/environment",
                    "code": "unknown_environment",
                    "message": f"There is no environment {environment!r}.",
                    "hint": f"Use one of: {', '.join(known)}.",
                }
            ],
        )
    if target.pk == audience.environment_id:
        raise invalid(
            "/environment",
            "same_environment",
            f"The audience is in {target.slug} already.",
            "Promote into another environment, e.g. production.",
        )
    there = Actor(
        user=actor.user,
        environment=target,
        door=actor.door,
        token=actor.token,
        ip=actor.ip,
        request_id=actor.request_id,
    )
    decision = policy.require(there, "audience.create")
    team = resolve_team(there, owner_team if owner_team is not None else audience.owner_team.name)
    copy_name = check_text({"name": name if name is not None else audience.name})["name"]
    clash_hint = (
        f'Send a new name for the copy, e.g. {{"environment": "{target.slug}", "name": "{copy_name} (copy)"}}, '
        f"or rename or archive the audience named {copy_name!r} in {target.slug}."
    )
    _ensure_name_free(target, copy_name, hint=clash_hint)
    rules, unmapped = _map_references(audience, target)
    checked = rules_check(target, rules)
    rules_pii_guard(
        actor=there, environment=target, rules=rules, purpose="audience.promote", audit_denial="audience.promote"
    )
    blocking = [p for p in checked.problems if p["code"] not in REFERENCE_CODES]
    if blocking:
        rules_check_or_raise(target, rules)
    unmapped_pointers = {entry["pointer"] for entry in unmapped}
    warnings = [p for p in checked.problems if p["code"] in REFERENCE_CODES and p["pointer"] not in unmapped_pointers]

    now = timezone.now()
    with transaction.atomic():
        copy = _save_new(
            Audience(
                environment=target,
                name=copy_name,
                owner_team=team,
                channel=audience.channel,
                purpose=audience.purpose,
                description=audience.description,
                rules=rules,
                state=AudienceState.DRAFT,
                # Actor.user is typed AbstractBaseUser; the user model is auth.User.
                created_by=cast("User | None", actor.user),
                created_at=now,
                updated_at=now,
            ),
            hint=clash_hint,
        )
        audit.record(
            there,
            "audience.promote",
            copy,
            decision=decision,
            changes={
                "from": {"environment": audience.environment.slug, "audience_id": audience.pk, "name": audience.name},
                "after": summary(copy),
                "unmapped": unmapped,
                # Into a weaker environment (an admin only: promote_not_down).
                "downward": is_downward(audience.environment, target),
            },
        )
    return Promotion(audience_queryset().get(pk=copy.pk), unmapped, warnings)


# --- copy into my team ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AudienceCopy:
    audience: Audience
    # Conditions of the copy that name an audience it may not use now (archived, never
    # published): the copy is saved, and its validate check fails until they are fixed.
    warnings: list[dict[str, Any]] = field(default_factory=list)


def _copy_team(actor: Actor, audience: Audience, team: str | None) -> Group:
    """The copy's owner: the team named, else the actor's only team; an admin (or the
    system) without exactly one team of their own keeps the audience's own team."""
    if team is None and picks_any_team(actor):
        own = objectperms.teams_of(actor.user) if actor.user is not None else []
        if len(own) != 1:
            return audience.owner_team
    return resolve_team(actor, team, pointer="/team")


def audience_copy(
    *, actor: Actor, audience: Audience, team: str | None = None, name: str | None = None
) -> AudienceCopy:
    """Copy an audience's definition — rules, channel, purpose, description; never its
    members, versions or shares — as a new draft of the same environment, owned by one of
    the actor's teams (`team`; default: their only team).

    Whoever may create audiences here may copy any audience they can see: it is how a
    marketer builds on another team's audience instead of asking for a share. The copy is
    named `name`, or "<name> (copy)" ("(copy 2)", … when taken). Refusals: 403 (role), 422
    `invalid_input` (team, name), 403 `not_team_member`, 409 `audience_name_taken` whose hint
    names a free name. Audited as `audience.copy` on the copy, with the audience it came
    from; no domain event (the product emits none for a new draft).
    """
    decision = policy.require(actor, "audience.copy", audience)
    owner = _copy_team(actor, audience, team)
    copy_name = check_text({"name": name if name is not None else audience_copy_name(audience)})["name"]
    environment = audience.environment
    if Audience.objects.filter(environment=environment, name=copy_name).exists():
        free = audience_copy_name(audience)
        raise _name_taken(
            environment,
            copy_name,
            hint=f"Give the copy another name, e.g. {free!r}, or rename the audience named {copy_name!r}.",
        )
    checked = rules_check(environment, audience.rules)
    if any(p["code"] not in REFERENCE_CODES for p in checked.problems):
        rules_check_or_raise(environment, audience.rules)
    rules_pii_guard(
        actor=actor,
        environment=environment,
        rules=audience.rules,
        purpose="audience.copy",
        target=audience,
        audit_denial="audience.copy",
    )
    warnings = list(checked.problems)  # only references are left: warned, fixed in the copy

    now = timezone.now()
    with transaction.atomic():
        copy = _save_new(
            Audience(
                environment=environment,
                name=copy_name,
                owner_team=owner,
                channel=audience.channel,
                purpose=audience.purpose,
                description=audience.description,
                rules=audience.rules,
                state=AudienceState.DRAFT,
                # Actor.user is typed AbstractBaseUser; the user model is auth.User.
                created_by=cast("User | None", actor.user),
                created_at=now,
                updated_at=now,
            ),
            hint="Someone took the name a moment ago: give the copy another name.",
        )
        audit.record(
            actor,
            "audience.copy",
            copy,
            decision=decision,
            changes={
                "from": {"audience_id": audience.pk, "name": audience.name, "owner_team": audience.owner_team.name},
                "after": summary(copy),
            },
        )
    return AudienceCopy(audience_queryset().get(pk=copy.pk), warnings)


# --- regional restrictions (admin site) ---------------------------------------------------------


def regional_restriction_save(*, actor: Actor, restriction: RegionalRestriction) -> RegionalRestriction:
    """Create or change a regional restriction (an admin's work): audited with before/after."""
    decision = policy.require(actor, "regional_restriction.change", restriction)
    fields = ("region", "channel", "kind", "description", "is_active")
    with transaction.atomic():
        before = None
        if restriction.pk is not None:
            before = RegionalRestriction.objects.select_for_update().filter(pk=restriction.pk).values(*fields).first()
        restriction.save()
        after = {name: getattr(restriction, name) for name in fields}
        audit.record(
            actor,
            "regional_restriction.create" if before is None else "regional_restriction.change",
            restriction,
            decision=decision,
            changes={"before": before, "after": after},
        )
    return restriction
