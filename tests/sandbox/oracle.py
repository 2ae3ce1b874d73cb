"""A test-only reading of the rules the scenarios use, as plain ORM queries.

Until the audience preview exists, the scenario figures are checked against this: each
rule becomes a `Q` over Profile (attributes, consent and events as EXISTS subqueries), and
the reach waterfall of PRODUCT.md §7 is counted step by step. It covers only what the
scenarios use: all/any/not, `attr` eq/in, `consent`, and `event` with within_days/min_count.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from audiences.models import Consent, Profile, ProfileEvent
from governance.models import Environment
from sandbox.scenarios import REGIONAL_RESTRICTIONS


def _granted(channel: str) -> Exists:
    return Exists(Consent.objects.filter(profile=OuterRef("pk"), channel=channel, status="granted"))


def rules_q(rule: dict[str, Any]) -> Q:
    if "all" in rule:
        q = Q()
        for part in rule["all"]:
            q &= rules_q(part)
        return q
    if "any" in rule:
        q = Q(pk__in=[])
        for part in rule["any"]:
            q |= rules_q(part)
        return q
    if "not" in rule:
        return ~rules_q(rule["not"])
    if "attr" in rule:
        path = rule["attr"].replace(".", "__")
        if rule["op"] == "eq":
            return Q(**{path: rule["value"]})
        if rule["op"] == "in":
            return Q(**{f"{path}__in": rule["value"]})
        raise NotImplementedError(rule["op"])
    if "consent" in rule:
        granted = Q(_granted(rule["consent"]))
        return granted if rule.get("is", True) else ~granted
    if "event" in rule:
        since = timezone.now() - timedelta(days=rule["within_days"])
        events = ProfileEvent.objects.filter(type=rule["event"], occurred_at__gte=since)
        min_count = rule.get("min_count", 1)
        if min_count <= 1:
            return Q(Exists(events.filter(profile=OuterRef("pk"))))
        counted = events.values("profile").annotate(n=Count("id")).filter(n__gte=min_count).values("profile")
        return Q(pk__in=counted)
    raise NotImplementedError(rule)


def matching(environment: Environment, rules: dict[str, Any]) -> QuerySet[Profile]:
    return Profile.objects.filter(environment=environment).filter(rules_q(rules))


# Each channel's contact point: a non-empty value in one of these columns.
CONTACT = {"email": ["email"], "sms": ["phone"], "push": ["push_token"], "ads": ["email", "phone"]}


def _addressed(channel: str) -> Q:
    q = Q(pk__in=[])
    for column in CONTACT[channel]:
        q |= Q(**{f"{column}__isnull": False}) & ~Q(**{column: ""})
    return q


def waterfall(environment: Environment, rules: dict[str, Any], channel: str) -> dict[str, int]:
    """matching → minus no address → minus no consent → minus suppressed → minus regional
    restriction = reachable."""
    matched = matching(environment, rules)
    addressed = matched.filter(_addressed(channel))
    consented = addressed.filter(_granted(channel))
    restricted = consented.filter(region__in=REGIONAL_RESTRICTIONS.get(channel, ()))
    n_matching = matched.count()
    n_addressed = addressed.count()
    n_consented = consented.count()
    n_restricted = restricted.count()
    return {
        "matching": n_matching,
        "removed_no_address": n_matching - n_addressed,
        "removed_no_consent": n_addressed - n_consented,
        "removed_suppressed": 0,  # no suppression lists in a fresh sandbox
        "removed_regional_restriction": n_restricted,
        "reachable": n_consented - n_restricted,
    }
