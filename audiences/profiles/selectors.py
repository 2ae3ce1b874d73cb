"""Reads of profiles and their consent, scoped to the actor's environment.

Every selector asks the policy engine first and raises `NotFound` for what lies in
another environment (404, not 403, so ids of other environments do not leak).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from audiences.models import CatalogueEntry, CatalogueKind, ConsentChange, Profile
from audiences.profiles.errors import PiiLookupRefused
from governance import policy
from governance.actors import Actor
from governance.models import Environment
from marketerapi.problems import NotFound


def profile_list(*, actor: Actor) -> QuerySet[Profile]:
    """All profiles of the actor's environment, with their consent (one extra query per page)."""
    policy.require(actor, "profile.view")
    return Profile.objects.filter(environment=actor.environment).prefetch_related("consents")


def profile_get(*, actor: Actor, profile_id: int) -> Profile:
    policy.require(actor, "profile.view")
    return _profile_in_environment(actor, profile_id, Profile.objects.prefetch_related("consents"))


def _profile_in_environment(actor: Actor, profile_id: int, queryset: QuerySet[Profile]) -> Profile:
    # By primary key alone, then the environment compared here: filtering on both lets the
    # planner pick the environment's index when its statistics lag behind a large load
    # (it then scans every profile of the environment for one row).
    try:
        profile: Profile | None = queryset.get(pk=profile_id)
    except Profile.DoesNotExist:
        profile = None
    if profile is None or profile.environment_id != actor.environment.pk:
        raise NotFound(
            f"There is no profile {profile_id} in {actor.environment.slug}.",
            code="profile_not_found",
            hint="Check the id (GET /api/v1/profiles/?external_id=… finds it by your own id), "
            "and that your token belongs to the profile's environment.",
        )
    return profile


def profile_pii_decision(*, actor: Actor) -> policy.Decision:
    """May the actor see unmasked emails, phones and names? (compliance reviewers only)."""
    return policy.decide(actor, "profile.view_pii")


# The lookups of the profiles list that name a person by personal data (?email=): an exact
# match maps an address to a profile, so only those who may see PII may use them.
PII_LOOKUPS: tuple[str, ...] = ("email", "phone", "first_name", "last_name", "push_token")


def profile_lookup_check(*, actor: Actor, params: Iterable[str]) -> None:
    """Refuse looking profiles up by personal data to a role that may not see it (403
    `pii_lookup_refused`, naming the parameters); those who may are audited by the read."""
    named = [name for name in PII_LOOKUPS if name in set(params)]
    if not named or profile_pii_decision(actor=actor).allowed:
        return
    raise PiiLookupRefused(
        f"Your role may not look profiles up by {', '.join(named)}: that would tell whose "
        f"{'address' if named == ['email'] else 'personal data'} it is.",
        errors=[
            {
                "pointer": f"?{name}",
                "code": "pii_lookup_refused",
                "message": f"{name} is personal data.",
                "hint": PiiLookupRefused.hint,
            }
            for name in named
        ],
    )


def pii_attribute_keys(*, environment: Environment) -> frozenset[str]:
    """The custom attribute keys marked as personal data in the environment's catalogue: what
    every representation of a profile masks for those who may not see PII (one query)."""
    return frozenset(
        CatalogueEntry.objects.filter(environment=environment, kind=CatalogueKind.ATTRIBUTE, pii=True).values_list(
            "key", flat=True
        )
    )


def profile_consent_history(*, actor: Actor, profile_id: int) -> QuerySet[ConsentChange]:
    """The consent ledger of one profile; the API pages it newest first."""
    policy.require(actor, "consent.view")
    profile = _profile_in_environment(actor, profile_id, Profile.objects.only("pk", "environment_id"))
    return ConsentChange.objects.filter(profile=profile)
