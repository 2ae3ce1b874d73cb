"""The generator alone (no database): determinism, synthetic PII only, distributions."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date

import pytest

from sandbox.generator import (
    APP_INSTALLED_RATE,
    CHANNELS,
    CONSENT_MIX,
    EVENT_TYPES,
    EVENT_WINDOW_DAYS,
    LOCALES,
    NULL_RATES,
    OPTED_OUT_RATE,
    PUSH_TOKEN_RATE,
    RESERVED_EMAIL_DOMAINS,
    RESERVED_PHONE_PATTERN,
    STAGES,
    SandboxData,
)
from sandbox.scenarios import SCENARIOS

ANCHOR = date(2026, 3, 2)
N = 20_000


@pytest.fixture(scope="module")
def data() -> SandboxData:
    return SandboxData(seed=7, profiles=N, anchor=ANCHOR)


@pytest.fixture(scope="module")
def random_profiles(data):
    return [p for p in data.profiles() if p.position < N]


def share(count: int, total: int) -> float:
    return 100.0 * count / total


def test_same_seed_and_size_give_byte_identical_rows():
    # given two generators built independently from the same seed and size
    first = SandboxData(seed=11, profiles=300, anchor=ANCHOR).digest()
    second = SandboxData(seed=11, profiles=300, anchor=ANCHOR).digest()

    # then every row hashes the same
    assert first == second


def test_another_seed_or_size_gives_other_rows():
    base = SandboxData(seed=11, profiles=300, anchor=ANCHOR).digest()

    assert SandboxData(seed=12, profiles=300, anchor=ANCHOR).digest() != base
    assert SandboxData(seed=11, profiles=301, anchor=ANCHOR).digest() != base


def test_streams_do_not_depend_on_the_order_they_are_read_in():
    # the PostgreSQL loader reads consent before events; another order must give the same rows
    one = SandboxData(seed=3, profiles=200, anchor=ANCHOR)
    other = SandboxData(seed=3, profiles=200, anchor=ANCHOR)
    events_first = list(one.events())
    consents_after = list(one.consents())

    assert list(other.consents()) == consents_after
    assert list(other.events()) == events_first


def test_every_email_is_on_a_reserved_domain_and_every_phone_in_a_reserved_range(data):
    profiles = list(data.profiles())
    emails = [p.email for p in profiles if p.email is not None]
    phones = [p.phone for p in profiles if p.phone is not None]

    assert emails and phones
    assert all(e.lower().rsplit("@", 1)[1] in RESERVED_EMAIL_DOMAINS for e in emails)
    assert all(RESERVED_PHONE_PATTERN.match(p) for p in phones)
    # random emails are unique, so only the duplicate-profile scenario has duplicates
    assert len({e.lower() for e in emails}) == len(emails) - 1


def test_locales_follow_their_weights_and_agree_with_country_and_region(random_profiles):
    by_code = {spec.code: spec for spec in LOCALES}
    total_weight = sum(spec.weight for spec in LOCALES)
    with_locale = [p for p in random_profiles if p.locale is not None]
    counts = Counter(p.locale for p in with_locale)

    for spec in LOCALES:
        expected = 100.0 * spec.weight / total_weight
        assert abs(share(counts[spec.code], len(with_locale)) - expected) < 1.5, spec.code
    for p in with_locale:
        if p.country is not None:
            assert (p.country, p.region) == (by_code[p.locale].country, by_code[p.locale].region)
    assert all((p.country is None) == (p.region is None) for p in random_profiles)


def test_lifecycle_stages_are_skewed_towards_leads_and_customers(random_profiles):
    staged = [p for p in random_profiles if p.lifecycle_stage is not None]
    counts = Counter(p.lifecycle_stage for p in staged)

    for stage, (weight, _) in STAGES.items():
        assert abs(share(counts[stage], len(staged)) - weight) < 1.5, stage
    assert counts.most_common(1)[0][0] == "lead"


@pytest.mark.parametrize("field", sorted(NULL_RATES))
def test_each_optional_field_is_empty_a_few_percent_of_the_time(random_profiles, field):
    empty = sum(1 for p in random_profiles if getattr(p, field) is None)

    assert abs(share(empty, N) - NULL_RATES[field]) < 1.0


def test_attributes_carry_loyalty_value_source_and_topics(random_profiles):
    attributes = [json.loads(p.attributes) for p in random_profiles]
    customers = [a for a, p in zip(attributes, random_profiles, strict=True) if p.lifecycle_stage == "loyal"]

    assert all("signup_source" in a for a in attributes)
    assert sum("loyalty_tier" in a for a in customers) > 0.9 * len(customers)
    assert all(a["loyalty_tier"] in {"silver", "gold", "platinum"} for a in customers if "loyalty_tier" in a)
    assert all(isinstance(a.get("lifetime_value", 0.0), float) for a in attributes)
    assert {t for a in attributes for t in a.get("newsletter_topics", [])} >= {"sales", "new_arrivals"}


def test_profiles_with_the_app_mostly_have_a_push_token(random_profiles):
    # the push channel's contact point: only where the app is installed, for most of them
    with_app = [p for p in random_profiles if json.loads(p.attributes)["app_installed"]]
    tokens = [p.push_token for p in random_profiles if p.push_token is not None]

    assert abs(share(len(with_app), N) - APP_INSTALLED_RATE) < 1.5
    assert abs(share(len(tokens), len(with_app)) - PUSH_TOKEN_RATE) < 1.5
    assert all(p.push_token is None for p in random_profiles if not json.loads(p.attributes)["app_installed"])
    assert len(set(tokens)) == len(tokens) and all(len(t) == 64 for t in tokens)


def test_consent_mixes_per_channel_and_a_few_percent_opted_out_everywhere(data):
    consents = [c for c in data.consents() if c.position < N]
    by_profile: dict[int, dict[str, str]] = {}
    for c in consents:
        by_profile.setdefault(c.position, {})[c.channel] = c.status
    opted_out = [i for i, s in by_profile.items() if len(s) == 4 and set(s.values()) == {"denied"}]

    assert 3.5 < len(consents) / N < 4.0  # about four stored consents per profile
    assert abs(share(len(opted_out), N) - OPTED_OUT_RATE) < 1.0
    for channel in CHANNELS:
        statuses = Counter(c.status for c in consents if c.channel == channel)
        granted, _, unknown = CONSENT_MIX[channel]
        total = sum(statuses.values())
        assert abs(share(statuses["granted"], total) - granted) < 3, channel
        assert abs(share(statuses["unknown"], total) - unknown) < 3, channel


def test_about_two_events_per_profile_over_the_last_90_days(data):
    events = [e for e in data.events() if e.position < N]
    types = Counter(e.type for e in events)

    assert 1.8 < len(events) / N < 2.3
    assert set(types) == set(EVENT_TYPES)
    assert all(0 < e.occurred_off <= EVENT_WINDOW_DAYS * 86_400 for e in events)
    assert all(e.received_off <= e.occurred_off for e in events)
    purchase = next(json.loads(e.properties) for e in events if e.type == "purchase")
    cart = next(json.loads(e.properties) for e in events if e.type == "cart_abandoned")
    assert {"amount", "currency", "sku", "order_id"} <= set(purchase)
    assert {"cart_value", "currency", "sku"} <= set(cart)


def test_scenario_profiles_follow_the_random_ones_with_recognisable_ids(data):
    scenario_rows = [p for p in data.profiles() if p.position >= N]

    assert len(scenario_rows) == sum(len(s.profiles) for s in SCENARIOS) == data.scenario_profiles
    assert [p.external_id for p in scenario_rows] == [x for s in SCENARIOS for x in s.external_ids]
    assert scenario_rows[0].external_id == "scn-mixed-consent-001"
