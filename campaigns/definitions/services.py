"""Writes of campaign definitions: create, edit, delete (drafts), share.

Every service asks the policy engine before its transaction (a refusal is audited in its
own transaction and raised), checks every value at once (one 422 `invalid_input` listing
each problem with its pointer and hint: unknown merge fields with did-you-mean, a schedule
in the past, a destination that cannot send the channel — nothing is written), then makes
the change and records exactly one audit event. Lifecycle (activate, pause, resume,
cancel) is campaigns/sending/services.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from audiences.definitions.checks import resolve_team
from audiences.definitions.selectors import teams
from audiences.models import Audience
from campaigns.definitions import checks
from campaigns.definitions.errors import CampaignNameTaken, CampaignNotEditable
from campaigns.definitions.selectors import campaign_queryset
from campaigns.models import EDITABLE_STATES, Campaign, CampaignState
from governance import policy
from governance.access import objectperms
from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import Environment
from governance.roles import ADMIN
from integrations.models import Destination
from marketerapi.problems import ApplicationError, InvalidInput

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, User

EDITABLE_FIELDS: tuple[str, ...] = (
    "name",
    "owner_team",
    "purpose",
    "channel",
    "audience",
    "destination",
    "assets",
    "schedule_at",
    "frequency_cap",
    "frequency_period_days",
)


def summary(campaign: Campaign) -> dict[str, Any]:
    """What an audit event says about a campaign before and after a change."""
    return {
        "name": campaign.name,
        "owner_team": campaign.owner_team.name if campaign.owner_team_id else None,
        "purpose": campaign.purpose,
        "channel": campaign.channel,
        "audience": campaign.audience_id,
        "destination": campaign.destination_id,
        "assets": campaign.assets,
        "schedule_at": campaign.schedule_at.isoformat() if campaign.schedule_at else None,
        "frequency_cap": campaign.frequency_cap,
        "frequency_period_days": campaign.frequency_period_days,
        "state": campaign.state,
    }


def _reference(model: type[Any], environment: Environment, value: Any, pointer: str, what: str) -> tuple[Any, list]:
    obj = value if isinstance(value, model) else None
    if obj is None and isinstance(value, int) and not isinstance(value, bool):
        obj = model.objects.filter(environment=environment, pk=value).first()
    if obj is None or obj.environment_id != environment.pk:
        return None, [
            checks.problem(
                pointer,
                f"{what}_not_found",
                f"There is no {what} {value!r} in {environment.slug}.",
                f"Send the id of a {what} of this environment (GET /api/v1/{what}s/ lists them).",
            )
        ]
    return obj, []


def _checked(actor: Actor, environment: Environment, values: dict[str, Any], current: Campaign | None) -> dict:
    """Every value resolved and checked; raises one InvalidInput naming every problem."""
    found: list[dict[str, str]] = []
    out = dict(values)
    for name, limit in (("name", 120), ("purpose", 200)):
        if name in out:
            value = out[name]
            if not isinstance(value, str) or not value.strip():
                found.append(
                    checks.problem(
                        f"/{name}", "blank", f"{name} must not be empty.", f"Say in a few words the campaign's {name}."
                    )
                )
            elif len(value.strip()) > limit:
                found.append(
                    checks.problem(
                        f"/{name}", "max_length", f"{name} is longer than {limit} characters.", "Shorten it."
                    )
                )
            else:
                out[name] = value.strip()
    if "owner_team" in out or current is None:
        try:
            out["owner_team"] = resolve_team(actor, out.get("owner_team"))
        except ApplicationError as error:
            found.extend(getattr(error, "errors", None) or [checks.problem("/owner_team", "invalid", error.detail, "")])
    channel = out.get("channel", current.channel if current else None)
    if "channel" in out:
        found.extend(checks.channel_problems(channel))
    if "audience" in out:
        out["audience"], problems = _reference(Audience, environment, out["audience"], "/audience", "audience")
        found.extend(problems)
    if "destination" in out:
        out["destination"], problems = _reference(
            Destination, environment, out["destination"], "/destination", "destination"
        )
        found.extend(problems)
    if not found and channel in checks.REQUIRED_ASSETS:
        audience = out.get("audience") or (current.audience if current else None)
        destination = out.get("destination") or (current.destination if current else None)
        if audience is not None and ("audience" in out or "channel" in out):
            found.extend(checks.audience_problems(audience, channel))
        if destination is not None and ("destination" in out or "channel" in out):
            found.extend(checks.destination_problems(destination, channel))
    if "assets" in out:
        found.extend(checks.asset_problems(environment, channel or "email", out["assets"]))
    if "schedule_at" in out:
        found.extend(checks.schedule_problems(environment, cast("datetime | None", out["schedule_at"])))
    for name in ("frequency_cap", "frequency_period_days"):
        value = out.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            found.append(
                checks.problem(
                    f"/{name}",
                    "invalid",
                    f"{name} must be a whole number of at least 1.",
                    "Send e.g. 3 (messages) per 7 (days); leave frequency_cap out for none.",
                )
            )
    if found:
        raise InvalidInput(f"{len(found)} value(s) are not valid; nothing was saved.", errors=found)
    return out


def _name_taken(environment: Environment, name: str) -> CampaignNameTaken:
    return CampaignNameTaken(
        f"{environment.slug} already has a campaign named {name!r}.",
        errors=[
            checks.problem("/name", "name_taken", f"{name!r} is taken in {environment.slug}.", "Choose another name.")
        ],
    )


def campaign_create(
    *,
    actor: Actor,
    name: str,
    channel: str,
    audience: Audience | int,
    destination: Destination | int,
    purpose: str,
    assets: dict[str, Any] | None = None,
    schedule_at: datetime | None = None,
    frequency_cap: int | None = None,
    frequency_period_days: int = 7,
    owner_team: str | None = None,
) -> Campaign:
    """Create a draft campaign in the actor's environment, owned by one of the actor's teams.

    Refusals: 403 (role), 422 `invalid_input` (every problem at once), 409 `campaign_name_taken`.
    """
    decision = policy.require(actor, "campaign.create")
    environment = actor.environment
    values = _checked(
        actor,
        environment,
        {
            "name": name,
            "channel": channel,
            "audience": audience,
            "destination": destination,
            "purpose": purpose,
            "assets": assets or {},
            "schedule_at": schedule_at,
            "frequency_cap": frequency_cap,
            "frequency_period_days": frequency_period_days,
            "owner_team": owner_team,
        },
        None,
    )
    if Campaign.objects.filter(environment=environment, name=values["name"]).exists():
        raise _name_taken(environment, values["name"])
    now = timezone.now()
    with transaction.atomic():
        campaign = Campaign(
            environment=environment,
            created_by=cast("User | None", actor.user if getattr(actor.user, "pk", None) else None),
            created_at=now,
            updated_at=now,
            state=CampaignState.DRAFT,
            **values,
        )
        try:
            with transaction.atomic():
                campaign.save(force_insert=True)
        except IntegrityError:
            raise _name_taken(environment, values["name"]) from None
        audit.record(actor, "campaign.create", campaign, decision=decision, changes={"after": summary(campaign)})
    return campaign_queryset().get(pk=campaign.pk)


def campaign_update(*, actor: Actor, campaign: Campaign, **changes: Any) -> Campaign:
    """Change a draft campaign: any of EDITABLE_FIELDS. Needs the owning team, a share of
    change, or the admin role (403 names the team); 409 once it was activated."""
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValueError(f"campaign_update does not change {', '.join(unknown)}")
    decision = policy.require(actor, "campaign.edit", campaign)
    if campaign.state not in EDITABLE_STATES:
        raise _not_editable(campaign)
    values = _checked(actor, campaign.environment, changes, campaign)
    if (
        "name" in values
        and Campaign.objects.filter(environment=campaign.environment, name=values["name"])
        .exclude(pk=campaign.pk)
        .exists()
    ):
        raise _name_taken(campaign.environment, values["name"])
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().select_related("owner_team").get(pk=campaign.pk)
        if locked.state not in EDITABLE_STATES:
            raise _not_editable(locked)
        before = summary(locked)
        for name, value in values.items():
            setattr(locked, name, value)
        after = summary(locked)
        changed = [name for name in before if before[name] != after[name]]
        if not changed:
            return campaign_queryset().get(pk=locked.pk)
        locked.updated_at = timezone.now()
        locked.save()
        audit.record(
            actor,
            "campaign.edit",
            locked,
            decision=decision,
            changes={"before": {k: before[k] for k in changed}, "after": {k: after[k] for k in changed}},
        )
    return campaign_queryset().get(pk=locked.pk)


def _not_editable(campaign: Campaign) -> CampaignNotEditable:
    return CampaignNotEditable(f"{campaign.name!r} is {campaign.get_state_display().lower()}; it no longer changes.")


def campaign_delete(*, actor: Actor, campaign: Campaign) -> None:
    """Delete a draft campaign (409 once it was activated: its sends are the record)."""
    decision = policy.require(actor, "campaign.delete", campaign)
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().select_related("owner_team").get(pk=campaign.pk)
        if locked.state not in EDITABLE_STATES:
            raise CampaignNotEditable(
                f"{locked.name!r} is {locked.get_state_display().lower()}; only drafts are deleted.",
                hint="Cancel it instead (POST /api/v1/campaigns/{id}/cancel); its sends stay on record.",
            )
        audit.record(actor, "campaign.delete", locked, decision=decision, changes={"before": summary(locked)})
        locked.delete()


def share_needs_owner(
    actor: Actor, spec: policy.Action, target: Any, context: dict[str, Any]
) -> policy.Decision | None:
    """Only the owning team or an admin shares a campaign (`campaign.share`): a share of
    change lets people edit and activate it, not pass it on (a policy hook, CampaignsConfig)."""
    if not isinstance(target, Campaign) or ADMIN in actor.roles:
        return None
    # Actor.user is typed AbstractBaseUser (no groups); the user model is auth.User.
    if actor.user is not None and actor.user.groups.filter(pk=target.owner_team_id).exists():  # type: ignore[attr-defined]
        return None
    team = target.owner_team.name
    return policy.Decision(
        policy.DENY,
        "object_permission",
        [f"{target} is owned by the team {team!r}; only that team or an admin may share it."],
        hint=f"Ask the {team} team (or an admin) to share it.",
    )


def _grantee(team: str | None, user: str | None) -> Group | User:
    if (team is None) == (user is None):
        raise InvalidInput(
            "Name either a team or a user, not both or neither.",
            errors=[
                checks.problem(
                    "",
                    "one_grantee",
                    "Name either a team or a user, not both or neither.",
                    'Send {"team": "retention", "level": "change"} or {"user": "ann", "level": "view"}.',
                )
            ],
        )
    if team is not None:
        group = teams().filter(name=team).first()
        if group is None:
            raise InvalidInput(
                f"There is no team {team!r}.",
                errors=[
                    checks.problem(
                        "/team", "unknown_team", f"There is no team {team!r}.", "Teams are groups such as growth."
                    )
                ],
            )
        return group
    found = get_user_model().objects.filter(username=user, is_active=True).first()
    if found is None:
        raise InvalidInput(
            f"There is no active user {user!r}.",
            errors=[checks.problem("/user", "unknown_user", f"There is no active user {user!r}.", "Check the name.")],
        )
    return cast("User", found)


def campaign_share(
    *, actor: Actor, campaign: Campaign, level: str, team: str | None = None, user: str | None = None
) -> Campaign:
    """Share with a team or a person at `view` or `change` (replacing an earlier level)."""
    decision = policy.require(actor, "campaign.share", campaign)
    if level not in objectperms.SHARE_LEVELS:
        raise InvalidInput(
            f"{level!r} is not a share level.",
            errors=[
                checks.problem("/level", "invalid_choice", f"{level!r} is not a share level.", "Use view or change.")
            ],
        )
    grantee = _grantee(team, user)
    with transaction.atomic():
        objectperms.unshare(campaign, grantee)
        objectperms.share(campaign, grantee, level)
        audit.record(
            actor,
            "campaign.share",
            campaign,
            decision=decision,
            changes={"grantee": {"team": team} if team else {"user": user}, "after": {"level": level}},
        )
    return campaign_queryset().get(pk=campaign.pk)
