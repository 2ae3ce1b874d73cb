"""Differential tests: the compiled SQL returns exactly the profiles the reference
evaluator picks, for hand-written rules and for hypothesis-generated rule trees."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.models import Consent, Profile, ProfileEvent
from audiences.rules import compile_rules, validate
from tests.audiences.reference import World, evaluate
from tests.factories import AudienceFactory, AudienceVersionFactory

REGIONS = ["EU", "UK", "NA", "APAC", None]
STAGES = ["lead", "prospect", "customer", "loyal", "lapsed", "churned", None]
LOCALES = ["en_GB", "de_DE", "fr_FR", "ja_JP", "", None]
TIERS = ["gold", "silver", "Bronze", None]
TOPICS = [["sports", "news"], ["fashion"], [], None]
EVENT_TYPES = ["cart_abandoned", "purchase", "page_view"]


@pytest.fixture
def world(db, sandbox):
    return build_world(sandbox)


def build_world(sandbox):
    """80 profiles with random attributes, consents and events, an audience with live
    members; the same data in the database and in a reference `World`."""
    rng = random.Random(7)
    now = timezone.now()
    team = Group.objects.get_or_create(name="growth")[0]
    profiles = []
    for i in range(80):
        attributes = {}
        for key, pool in (("tier", TIERS), ("topics", TOPICS)):
            value = rng.choice(pool)
            if value is not None:
                attributes[key] = value
        if rng.random() < 0.8:
            attributes["ltv"] = rng.choice([0, 10, 49.5, 50, 120, 999])
        if rng.random() < 0.7:
            attributes["vip"] = rng.random() < 0.3
        profiles.append(
            Profile(
                environment=sandbox,
                external_id=f"d-{i:03d}",
                email=rng.choice([f"p{i}@example.test", f"P{i}@Mail.Example", None, ""]),
                phone=rng.choice(["+447700900123", None, "", None]),
                push_token=rng.choice([f"{i:064x}", None, ""]),
                first_name=rng.choice(["Ann", "ann", "Zoë", "Ökan", None]),
                locale=rng.choice(LOCALES),
                country=rng.choice(["GB", "DE", "FR", "JP", None]),
                region=rng.choice(REGIONS),
                lifecycle_stage=rng.choice(STAGES),
                attributes=attributes,
                created_at=now - timedelta(days=rng.randint(0, 400)),
            )
        )
    Profile.objects.bulk_create(profiles)
    profiles = list(Profile.objects.filter(environment=sandbox))
    w = World(now=now)
    consents, events = [], []
    for p in profiles:
        for channel in ("email", "sms", "push", "ads"):
            status = rng.choice(["granted", "denied", "unknown", None])
            if status:
                consents.append(Consent(profile=p, channel=channel, status=status, captured_at=now))
                w.consents.setdefault(p.pk, {})[channel] = status
        for _ in range(rng.randint(0, 4)):
            kind = rng.choice(EVENT_TYPES)
            when = now - timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 23))
            props = {"amount": rng.choice([5, 50, 75.5, 200])} if rng.random() < 0.7 else {}
            events.append(ProfileEvent(profile=p, type=kind, occurred_at=when, properties=props))
            w.events.setdefault(p.pk, []).append((kind, when, props))
    Consent.objects.bulk_create(consents)
    ProfileEvent.objects.bulk_create(events)
    other = AudienceFactory(environment=sandbox, name="buyers", owner_team=team)
    chosen = [p for p in profiles if rng.random() < 0.4]
    version = AudienceVersionFactory(audience=other, rules={"all": []}, memberships=chosen)
    w.members[other.pk] = {p.pk for p in chosen}
    return {"profiles": profiles, "world": w, "live": {other.pk: version.pk}, "audience_id": other.pk, "env": sandbox}


def _check(rule, world):
    assert validate(rule).valid, validate(rule).problems
    compiled = compile_rules(rule, now=world["world"].now, live_versions=world["live"])
    got = set(Profile.objects.filter(environment=world["env"]).filter(compiled).values_list("pk", flat=True))
    expected = {p.pk for p in world["profiles"] if evaluate(rule, p, world["world"])}
    assert got == expected, (
        f"rule {rule}: SQL-only {sorted(got - expected)[:5]}, reference-only {sorted(expected - got)[:5]}"
    )


HAND_WRITTEN = [
    {"all": [{"attr": "region", "op": "in", "value": ["EU", "UK"]}, {"consent": "email", "is": True}]},
    {
        "any": [
            {"attr": "lifecycle_stage", "op": "eq", "value": "customer"},
            {"event": "cart_abandoned", "within_days": 7, "min_count": 1},
        ]
    },
    {"attr": "region", "op": "neq", "value": "EU"},
    {"attr": "region", "op": "not_in", "value": ["EU", "NA"]},
    {"not": {"attr": "region", "op": "eq", "value": "EU"}},
    {"attr": "region", "op": "is_null", "value": True},
    {"attr": "locale", "op": "eq", "value": ""},
    {"attr": "first_name", "op": "contains", "value": "an"},
    {"attr": "email", "op": "starts_with", "value": "p1"},
    {"attr": "attributes.tier", "op": "eq", "value": "gold"},
    {"attr": "attributes.tier", "op": "neq", "value": "gold"},
    {"attr": "attributes.tier", "op": "not_in", "value": ["gold", "silver"]},
    {"attr": "attributes.tier", "op": "contains", "value": "bronze"},
    {"attr": "attributes.tier", "op": "is_null", "value": True},
    {"attr": "attributes.ltv", "op": "gt", "value": 49.5},
    {"attr": "attributes.ltv", "op": "between", "value": [10, 120]},
    {"attr": "attributes.ltv", "op": "eq", "value": 50},
    {"attr": "attributes.vip", "op": "eq", "value": True},
    {"attr": "attributes.vip", "op": "neq", "value": True},
    {"attr": "attributes.topics", "op": "contains", "value": "news"},
    {"attr": "created_at", "op": "within_days", "value": 30},
    {"attr": "created_at", "op": "is_null", "value": False},
    {"consent": "sms", "is": False},
    {"event": "purchase", "min_count": 2},
    {
        "event": "purchase",
        "within_days": 14,
        "min_count": 2,
        "where": [{"property": "amount", "op": "gte", "value": 50}],
    },
    {"not": {"event": "page_view", "within_days": 7}},
    {"any": [{"event": "cart_abandoned", "within_days": 3}, {"not": {"consent": "push", "is": True}}]},
]


@pytest.mark.parametrize("rule", HAND_WRITTEN, ids=lambda r: str(r)[:60])
def test_hand_written_rules_match_the_reference(world, rule):
    _check(rule, world)


def test_in_audience_matches_the_live_members(world):
    _check({"in_audience": world["audience_id"]}, world)
    _check({"not": {"in_audience": world["audience_id"]}}, world)
    _check({"all": [{"in_audience": world["audience_id"]}, {"consent": "email", "is": True}]}, world)


# --- generated rule trees ---------------------------------------------------------

_str_value = st.sampled_from(["en_GB", "de_DE", "", "GB", "DE", "Ann", "ann", "Zoë", "p1@example.test", "x"])


def _leaf(audience_id: int):
    region = st.builds(
        lambda op, v: {"attr": "region", "op": op, "value": v},
        st.sampled_from(["eq", "neq"]),
        st.sampled_from(["EU", "UK", "NA", "APAC"]),
    )
    region_list = st.builds(
        lambda op, v: {"attr": "region", "op": op, "value": v},
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from(["EU", "UK", "NA"]), min_size=1, max_size=3),
    )
    stage = st.builds(
        lambda op, v: {"attr": "lifecycle_stage", "op": op, "value": v},
        st.sampled_from(["eq", "neq"]),
        st.sampled_from(["lead", "customer", "loyal", "churned"]),
    )
    null = st.builds(
        lambda a, v: {"attr": a, "op": "is_null", "value": v},
        st.sampled_from(["region", "locale", "email", "attributes.tier", "attributes.ltv", "created_at"]),
        st.booleans(),
    )
    text = st.builds(
        lambda a, op, v: {"attr": a, "op": op, "value": v},
        st.sampled_from(["locale", "country", "first_name", "email"]),
        st.sampled_from(["eq", "neq", "contains", "starts_with"]),
        _str_value,
    )
    tier = st.builds(
        lambda op, v: {"attr": "attributes.tier", "op": op, "value": v},
        st.sampled_from(["eq", "neq", "contains"]),
        st.sampled_from(["gold", "silver", "bronze"]),
    )
    ltv = st.builds(
        lambda op, v: {"attr": "attributes.ltv", "op": op, "value": v},
        st.sampled_from(["gt", "gte", "lt", "lte", "eq", "neq"]),
        st.sampled_from([0, 10, 49.5, 50, 100]),
    )
    vip = st.builds(
        lambda op, v: {"attr": "attributes.vip", "op": op, "value": v}, st.sampled_from(["eq", "neq"]), st.booleans()
    )
    created = st.builds(lambda d: {"attr": "created_at", "op": "within_days", "value": d}, st.integers(1, 400))
    consent = st.builds(
        lambda c, v: {"consent": c, "is": v}, st.sampled_from(["email", "sms", "push", "ads"]), st.booleans()
    )
    event = st.builds(
        lambda t, d, n, where: {
            "event": t,
            **({"within_days": d} if d else {}),
            "min_count": n,
            **({"where": [{"property": "amount", "op": where[0], "value": where[1]}]} if where else {}),
        },
        st.sampled_from(EVENT_TYPES),
        st.sampled_from([None, 1, 7, 30]),
        st.integers(1, 3),
        st.none() | st.tuples(st.sampled_from(["gt", "lte", "eq"]), st.sampled_from([5, 50, 75.5])),
    )
    member = st.just({"in_audience": audience_id})
    return st.one_of(region, region_list, stage, null, text, tier, ltv, vip, created, consent, event, member)


def _trees(audience_id: int):
    return st.recursive(
        _leaf(audience_id),
        lambda children: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda x: {"not": x}, children),
        ),
        max_leaves=6,
    )


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_rules_match_the_reference(world, data):
    rule = data.draw(_trees(world["audience_id"]))
    _check(rule, world)
