"""Reads of audience definitions: lists, one audience, shares, preview and validate.

Every selector asks the policy engine first and scopes to the actor's environment; an
audience of another environment is a 404 (`audience_not_found`), never a 403, so ids do
not leak. Rules are checked with `audiences.rules.rules_check` against the audiences of
the same environment only.

Preview and validate are reads: they run a fixed number of aggregate queries over the
compiled rules (audiences/reach.py) and write nothing, except the audit of an unmasked
sample for the roles that may see PII (`preview_as_seen`, which every door shows the
preview through, like the profiles API).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from guardian.models import GroupObjectPermission, UserObjectPermission

from audiences.catalogue import selectors as catalogue
from audiences.definitions.budget import preview_budget
from audiences.definitions.filters import audiences_filtered
from audiences.models import (
    Audience,
    AudienceState,
)
from audiences.profiles import selectors, services
from audiences.profiles.pii import SHOWN_FIELDS, mask_pii
from audiences.profiles.pii_filters import rules_pii_guard
from audiences.reach import ADDRESS_WORDS, address_rule, compute_preview, reach_stats
from audiences.rules import rule_references, rules_check, rules_check_or_raise
from governance import policy
from governance.access import objectperms
from governance.actors import Actor
from governance.models import Environment
from governance.roles import ADMIN, ROLE_NAMES
from marketerapi.problems import NotFound

REQUIRED_METADATA: tuple[str, ...] = ("name", "owner_team", "channel", "purpose", "description")


# --- lists and one audience -------------------------------------------------------------


def audience_queryset() -> QuerySet[Audience]:
    """Audiences with what their representation reads, in one query per page."""
    return Audience.objects.select_related("environment", "owner_team", "created_by", "live_version")


def audience_list(*, actor: Actor, filters: Mapping[str, str] | None = None) -> QuerySet[Audience]:
    """Every audience of the actor's environment (everyone there may view them), newest
    first; `filters` (team, state, channel, q: definitions/filters.py) narrow them."""
    policy.require(actor, "audience.view")
    audiences = audience_queryset().filter(environment=actor.environment)
    return audiences_filtered(audiences, filters) if filters else audiences


def audience_get(*, actor: Actor, audience_id: int) -> Audience:
    """One audience of the actor's environment, or 404 `audience_not_found`."""
    policy.require(actor, "audience.view")
    return audience_in_environment(actor.environment, audience_id)


def audience_in_environment(environment: Environment, audience_id: int) -> Audience:
    try:
        return audience_queryset().get(environment=environment, pk=audience_id)
    except Audience.DoesNotExist:
        raise NotFound(
            f"There is no audience {audience_id} in {environment.slug}.",
            code="audience_not_found",
            hint="Check the id (GET /api/v1/audiences/ lists them), and that your token belongs to the "
            "audience's environment.",
        ) from None


def audience_shares(audience: Audience) -> list[dict[str, str]]:
    """Who the audience was shared with (django-guardian), and at which level: two queries."""
    content_type = ContentType.objects.get_for_model(Audience)
    levels: dict[tuple[str, str], str] = {}
    rows: Iterable[tuple[str, str, str]] = [
        ("team", name, codename)
        for name, codename in GroupObjectPermission.objects.filter(
            content_type=content_type, object_pk=str(audience.pk)
        ).values_list("group__name", "permission__codename")
    ]
    rows = [
        *rows,
        *(
            ("user", name, codename)
            for name, codename in UserObjectPermission.objects.filter(
                content_type=content_type, object_pk=str(audience.pk)
            ).values_list("user__username", "permission__codename")
        ),
    ]
    for kind, name, codename in rows:
        level = codename.split("_", 1)[0]
        if levels.get((kind, name)) != "change":
            levels[(kind, name)] = level
    return [{kind: name, "level": level} for (kind, name), level in sorted(levels.items())]


def teams() -> QuerySet[Group]:
    """Teams are the Django groups that are not one of the six roles."""
    return Group.objects.exclude(name__in=ROLE_NAMES)


def owner_team_choices(actor: Actor) -> list[Group]:
    """The teams the actor may give an audience to (what a form offers as owner team): their
    own teams; every team for admins and the system (checks.resolve_team accepts the same)."""
    if actor.user is None or ADMIN in actor.roles:
        return list(teams().order_by("name"))
    return sorted(objectperms.teams_of(actor.user), key=lambda g: g.name)


# --- names for copies ------------------------------------------------------------------------

NAME_MAX = 120


def _copy_candidate(name: str, n: int) -> str:
    suffix = " (copy)" if n == 1 else f" (copy {n})"
    return name[: NAME_MAX - len(suffix)].rstrip() + suffix


def audience_copy_name(audience: Audience) -> str:
    """The first free name for a copy of the audience in its environment: "<name> (copy)",
    then "<name> (copy 2)", … (shortened to fit 120 characters): one query."""
    # Every candidate starts with this (a suffix is at most " (copy 999999)", 14 characters).
    stem = audience.name[: NAME_MAX - 14].rstrip()
    taken = set(
        Audience.objects.filter(environment_id=audience.environment_id, name__startswith=stem).values_list(
            "name", flat=True
        )
    )
    n = 1
    while _copy_candidate(audience.name, n) in taken:
        n += 1
    return _copy_candidate(audience.name, n)


# --- preview ------------------------------------------------------------------------------


def audience_preview(*, actor: Actor, rules: Any, channel: str, audience: Audience | None = None) -> dict[str, Any]:
    """Count, reach waterfall, breakdowns, sample (unmasked Profile objects) and warnings —
    among them a did-you-mean for each custom attribute, event type or event property the
    environment's catalogue has never seen (with a `pointer`).

    For a saved audience pass it (its id guards against cycles); rules that do not
    validate are refused with 422 `invalid_rules` before anything is counted; the preview
    budget (definitions/budget.py) refuses rules that cost too much (422), more previews at
    once than allowed (429) and stops one that runs too long (422).
    """
    policy.require(actor, "audience.preview", audience)
    checked = rules_check_or_raise(actor.environment, rules, self_id=audience.pk if audience else None)
    # Counts, waterfall, breakdowns and the sample answer questions about whoever the rules
    # select: rules that test personal data only for those who may see it (audited).
    rules_pii_guard(
        actor=actor, environment=actor.environment, rules=rules, purpose="audience.preview", target=audience
    )
    with preview_budget(actor=actor, rules=rules):
        result = compute_preview(
            environment=actor.environment,
            rules=rules,
            channel=channel,
            live_versions=checked.live_versions,
            timeout_ms=settings.PREVIEW_STATEMENT_TIMEOUT_MS,
        )
    # Custom attributes and events nobody has: a did-you-mean warning each (a key may be new).
    result["warnings"].extend(catalogue.unknown_names(actor.environment, rules))
    return result


def rules_problems(*, actor: Actor, rules: Any, audience: Audience | None = None) -> list[dict[str, str]]:
    """Every problem of `rules` in the actor's environment (pointers under /rules): what a
    door adds when it refuses other values of the same request, so that one answer lists
    them all."""
    return rules_check(actor.environment, rules, self_id=audience.pk if audience else None).problems


# The fields of a profile that a preview's sample shows.
SAMPLE_FIELDS: tuple[str, ...] = ("id", *SHOWN_FIELDS)


def preview_as_seen(*, actor: Actor, result: dict[str, Any]) -> dict[str, Any]:
    """A preview (`audience_preview`) as the caller may see it, in every door: the sample as
    plain rows, masked unless they may see PII (compliance reviewers), whose unmasked read
    is audited (`profile.pii_read`)."""
    decision = selectors.profile_pii_decision(actor=actor)
    sample = result["sample"]
    if decision.allowed and sample:
        services.profile_pii_read_record(actor=actor, profiles=sample, decision=decision)
    rows = [{name: getattr(profile, name) for name in SAMPLE_FIELDS} for profile in sample]
    if not decision.allowed:
        rows = [mask_pii(row) for row in rows]
    return {**result, "sample": rows, "pii_masked": not decision.allowed}


# --- validate --------------------------------------------------------------------------------


def _check(code: str, status: str, message: str, hint: str = "", **extra: Any) -> dict[str, Any]:
    return {"code": code, "passed": status == "passed", "status": status, "message": message, "hint": hint, **extra}


def _missing_metadata(audience: Audience) -> list[str]:
    missing = []
    for name in REQUIRED_METADATA:
        value = audience.owner_team_id if name == "owner_team" else getattr(audience, name)
        if value is None or (isinstance(value, str) and not value.strip()):
            missing.append(name)
    return missing


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _a(words: str) -> str:
    """The words with their indefinite article: "an email address", "a phone number"."""
    return f"{'an' if words[:1] in 'aeiou' else 'a'} {words}"


def audience_validate(*, actor: Actor, audience: Audience) -> dict[str, Any]:
    """The checks a marketer fixes before publishing, each with a plain message and a hint.

    `status` is `passed`, `warning` (publishing works, but look), `failed` (publishing
    would be refused) or `skipped` (not checked until the rules are valid); `valid` is
    true when nothing failed or was skipped.
    """
    policy.require(actor, "audience.view", audience)
    channel = audience.channel
    checked = rules_check(audience.environment, audience.rules, self_id=audience.pk)
    rules_pii_guard(
        actor=actor,
        environment=audience.environment,
        rules=audience.rules,
        purpose="audience.validate",
        target=audience,
    )
    checks: list[dict[str, Any]] = []

    if checked.valid:
        checks.append(_check("schema", "passed", "The rules are valid."))
    else:
        first = checked.problems[0]
        checks.append(
            _check(
                "schema",
                "failed",
                f"The rules have {_plural(len(checked.problems), 'problem')}, e.g. at {first['pointer']}: "
                f"{first['message']}",
                f"{first['hint']} Each problem in `errors` has its own pointer and hint; fix them with "
                f"PATCH /api/v1/audiences/{audience.pk}.",
                errors=checked.problems,
            )
        )

    missing = _missing_metadata(audience)
    if missing:
        checks.append(
            _check(
                "required_metadata",
                "failed",
                f"Missing: {', '.join(missing)}. Every audience says who owns it, why it exists and which channel "
                "it is for.",
                f"Fill in {', '.join(missing)} with PATCH /api/v1/audiences/{audience.pk}.",
                missing=missing,
            )
        )
    else:
        checks.append(
            _check("required_metadata", "passed", "Name, owner team, channel, purpose and description are set.")
        )

    if not checked.valid:
        for code in ("known_names", "address", "consent", "regional_restrictions", "suppression_overlap", "size"):
            checks.append(
                _check(code, "skipped", "Not checked: the rules are not valid.", "Fix the rules first (see `schema`).")
            )
        return {"valid": False, "checks": checks}

    checks.append(_known_names_check(audience))
    with preview_budget(actor=actor, rules=audience.rules):
        stats = reach_stats(
            audience.environment,
            audience.rules,
            channel,
            checked.live_versions,
            timeout_ms=settings.PREVIEW_STATEMENT_TIMEOUT_MS,
        )
    matching, addressed, consented = stats["matching"], stats["addressed"], stats["consented"]
    reachable = stats["reachable"]
    one, many = ADDRESS_WORDS[channel]
    unaddressed = matching - addressed
    if unaddressed:
        checks.append(
            _check(
                "address",
                "warning",
                f"{unaddressed:,} of {_plural(matching, 'matching profile')} have no {one}; they will not be members.",
                f"Add the rule {json.dumps(address_rule(channel))} so that the rules say exactly who you reach, or "
                f"send their {many} with POST /api/v1/profiles/bulk.",
                count=unaddressed,
            )
        )
    else:
        checks.append(_check("address", "passed", f"Every matching profile has {_a(one)}.", count=0))

    lacking = addressed - consented
    if lacking:
        checks.append(
            _check(
                "consent",
                "warning",
                f"{lacking:,} of {_plural(matching, 'matching profile')} lack {channel} consent; they will not be "
                "members.",
                f'Add the rule {{"consent": "{channel}", "is": true}} so that the rules say exactly who you reach, '
                "or choose a channel they consented to.",
                count=lacking,
            )
        )
    else:
        checks.append(
            _check("consent", "passed", f"Every matching profile with {_a(one)} has {channel} consent.", count=0)
        )

    restrictions = stats["restrictions"]
    if not restrictions:
        checks.append(
            _check(
                "regional_restrictions",
                "passed",
                f"No regional restriction applies to {channel} in {audience.environment.slug}.",
                count=0,
                restrictions=[],
            )
        )
    elif stats["restricted_removed"]:
        applied = "; ".join(f"{r['description']} ({r['removes']:,})" for r in restrictions if r["removes"])
        checks.append(
            _check(
                "regional_restrictions",
                "warning",
                f"Regional restrictions remove {_plural(stats['restricted_removed'], 'profile')}: {applied}.",
                "They are applied automatically. To reach these people, ask for explicit consent where a region "
                "needs it, or exclude the region in the rules so that the count says what you get.",
                count=stats["restricted_removed"],
                restrictions=restrictions,
            )
        )
    else:
        names = "; ".join(r["description"] for r in restrictions)
        checks.append(
            _check(
                "regional_restrictions",
                "passed",
                f"Restrictions apply to {channel} here ({names}), but they remove nobody of this audience.",
                count=0,
                restrictions=restrictions,
            )
        )

    suppressed = stats["suppressed"]
    if suppressed:
        checks.append(
            _check(
                "suppression_overlap",
                "warning",
                f"{suppressed:,} of {_plural(matching, 'matching profile')} are on a suppression list; "
                f"{stats['suppressed_removed']:,} of them would otherwise be reached.",
                "Suppressed people are never contacted and are left out automatically. If one was added by "
                "mistake, remove them from the list (GET /api/v1/suppressions/).",
                count=suppressed,
            )
        )
    else:
        checks.append(_check("suppression_overlap", "passed", "No matching profile is suppressed.", count=0))

    if reachable:
        checks.append(
            _check(
                "size",
                "passed",
                f"The audience would reach {_plural(reachable, 'profile')} by {channel}.",
                count=reachable,
            )
        )
    else:
        checks.append(_check("size", "failed", *_empty_reason(stats, channel, audience.pk), count=0))

    return {"valid": all(check["status"] in ("passed", "warning") for check in checks), "checks": checks}


def _known_names_check(audience: Audience) -> dict[str, Any]:
    """Custom attributes, event types and event properties the environment has never seen:
    a warning (a key may be new), each in `errors` with its pointer and nearest names."""
    unknown = catalogue.unknown_names(audience.environment, audience.rules)
    if not unknown:
        return _check(
            "known_names",
            "passed",
            "Every custom attribute and event in the rules occurs in the data (or the rules use none).",
            count=0,
        )
    first = unknown[0]
    return _check(
        "known_names",
        "warning",
        f"{_plural(len(unknown), 'name')} in the rules never occurred in {audience.environment.slug}'s data, e.g. "
        f"at {first['pointer']}: {first['message']}",
        "Check the spelling of each; `errors` lists them with the nearest known names. A name your systems will "
        "start sending soon is fine as it is.",
        count=len(unknown),
        errors=unknown,
    )


def _empty_reason(stats: dict[str, Any], channel: str, audience_id: int) -> tuple[str, str]:
    if not stats["matching"]:
        return (
            "No profile matches the rules.",
            f"Loosen a condition; POST /api/v1/audiences/{audience_id}/preview shows the breakdowns.",
        )
    if not stats["addressed"]:
        one, many = ADDRESS_WORDS[channel]
        return (
            f"{_plural(stats['matching'], 'profile')} match, but none has {_a(one)}.",
            f"Send their {many} with POST /api/v1/profiles/bulk, or choose a channel you have an address for.",
        )
    if not stats["consented"]:
        return (
            f"{_plural(stats['matching'], 'profile')} match, but none with an address has {channel} consent.",
            "Choose a channel these people consented to, or target people who did.",
        )
    if stats["consented"] == stats["suppressed_removed"]:
        return (
            "Every matching profile with consent is on a suppression list.",
            "Check the suppression lists (GET /api/v1/suppressions/).",
        )
    return (
        "Regional restrictions remove every remaining profile.",
        "See `regional_restrictions`: ask for explicit consent, or choose another channel.",
    )


# --- in_audience references between audiences ---------------------------------------------


def audiences_referring_to(audience: Audience) -> list[str]:
    """Names of the environment's other audiences whose rules (draft or live) use it."""
    rows = (
        Audience.objects.filter(environment_id=audience.environment_id)
        .exclude(pk=audience.pk)
        .exclude(state=AudienceState.ARCHIVED)
        .values_list("name", "rules", "live_version__rules")
    )
    return sorted(
        name
        for name, rules, live in rows
        if any(ref == audience.pk for _, ref in [*rule_references(rules), *rule_references(live)])
    )
