"""The six named scenarios: their figures, checked against plain ORM queries, against the
audience preview and against docs/sandbox.md."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audiences.models import Profile, RegionalRestriction, SuppressionEntry, SuppressionList
from audiences.reach import compute_preview
from governance.actors import Actor
from governance.models import Door
from sandbox.scenarios import REGIONAL_RESTRICTIONS, SCENARIOS, SCENARIOS_BY_NAME
from sandbox.services import sandbox_reset
from tests.sandbox.oracle import matching, waterfall

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sandbox.md"
FIGURES = (
    "matching",
    "removed_no_address",
    "removed_no_consent",
    "removed_suppressed",
    "removed_regional_restriction",
    "reachable",
)
# How docs/sandbox.md names each channel's contact point in its figure lines.
ADDRESS = {"email": "email address", "sms": "phone number", "push": "push token", "ads": "email or phone"}
NAMES = [s.name for s in SCENARIOS]


@pytest.fixture
def loaded(sandbox):
    # anchored today, as the command does, so "within 7 days" counts from now
    sandbox_reset(
        actor=Actor.system(sandbox, door=Door.CLI),
        environment=sandbox,
        profiles=100,
        seed=21,
        anchor=datetime.now(UTC).date(),
    )
    return sandbox


def test_the_six_scenarios_of_the_product_are_defined():
    assert NAMES == [
        "mixed-consent",
        "duplicate-profile",
        "regional-restriction",
        "cart-abandonment",
        "locale-and-null-edge-cases",
        "opted-out-everywhere",
    ]
    for scenario in SCENARIOS:
        assert set(FIGURES) <= set(scenario.expected)
        e = scenario.expected
        assert (
            e["matching"]
            - e["removed_no_address"]
            - e["removed_no_consent"]
            - e["removed_suppressed"]
            - e["removed_regional_restriction"]
            == e["reachable"]
        )


@pytest.mark.parametrize("name", NAMES)
def test_a_preview_of_the_scenario_rules_shows_the_expected_figures(loaded, name):
    scenario = SCENARIOS_BY_NAME[name]
    expected = scenario.expected

    figures = waterfall(loaded, expected["rules"], expected["channel"])

    assert figures == {key: expected[key] for key in FIGURES}


@pytest.mark.parametrize("name", NAMES)
def test_each_scenario_loads_exactly_its_profiles(loaded, name):
    scenario = SCENARIOS_BY_NAME[name]

    stored = Profile.objects.filter(environment=loaded, external_id__startswith=f"scn-{name}-")

    assert sorted(stored.values_list("external_id", flat=True)) == scenario.external_ids


@pytest.mark.parametrize("name", NAMES)
def test_the_audience_preview_shows_the_documented_waterfall(loaded, name):
    expected = SCENARIOS_BY_NAME[name].expected

    preview = compute_preview(environment=loaded, rules=expected["rules"], channel=expected["channel"])

    removed = {step["step"]: step["removed"] for step in preview["waterfall"]}
    assert {
        "matching": preview["count"],
        "removed_no_address": removed["no address"],
        "removed_no_consent": removed["without consent"],
        "removed_suppressed": removed["suppressed"],
        "removed_regional_restriction": removed["regional restriction"],
        "reachable": preview["reachable"],
    } == {key: expected[key] for key in FIGURES}


def test_mixed_consent_breaks_down_by_email_consent(loaded):
    expected = SCENARIOS_BY_NAME["mixed-consent"].expected
    profiles = matching(loaded, expected["rules"])

    # plain ORM: a profile without stored email consent counts as unknown, as in the preview
    breakdown = {"granted": 0, "denied": 0, "unknown": 0}
    for profile in profiles.prefetch_related("consents"):
        status = next((c.status for c in profile.consents.all() if c.channel == "email"), "unknown")
        breakdown[status] += 1
    preview = compute_preview(environment=loaded, rules=expected["rules"], channel="email")

    assert breakdown == expected["consent_breakdown"] == preview["breakdowns"]["consent"]


def test_duplicate_profile_is_one_person_under_two_external_ids(loaded):
    expected = SCENARIOS_BY_NAME["duplicate-profile"].expected
    emails = list(matching(loaded, expected["rules"]).values_list("email", flat=True))

    assert len({e.lower() for e in emails}) == expected["distinct_emails"]
    assert len(set(emails)) == len(emails)  # the raw values differ by case only


def test_suppressing_either_spelling_of_the_duplicate_email_suppresses_both_profiles(loaded):
    expected = SCENARIOS_BY_NAME["duplicate-profile"].expected
    suppressions = SuppressionList.objects.create(environment=loaded, name="complaints")
    SuppressionEntry.objects.create(
        suppression_list=suppressions, email_hash=hashlib.sha256(b"robin.twice@example.test").hexdigest()
    )

    preview = compute_preview(environment=loaded, rules=expected["rules"], channel="email")

    removed = {step["step"]: step["removed"] for step in preview["waterfall"]}
    assert (removed["suppressed"], preview["reachable"]) == (2, 1)


def test_regional_restriction_keeps_sms_consent_in_a_restricted_region(loaded):
    restricted = REGIONAL_RESTRICTIONS["sms"]
    rules = SCENARIOS_BY_NAME["regional-restriction"].expected["rules"]

    in_region = matching(loaded, rules).filter(region__in=restricted)

    assert in_region.filter(consents__channel="sms", consents__status="granted").count() == 2


def test_each_reset_keeps_the_restriction_the_scenario_relies_on_active(loaded):
    RegionalRestriction.objects.filter(environment=loaded).update(is_active=False)

    sandbox_reset(actor=Actor.system(loaded, door=Door.CLI), environment=loaded, profiles=0, seed=1)

    rule = RegionalRestriction.objects.get(environment=loaded)
    assert (rule.region, rule.channel, rule.kind, rule.is_active) == ("MEA", "sms", "blocked", True)


def test_random_profiles_never_match_a_scenario_rule(loaded):
    for scenario in SCENARIOS:
        assert not matching(loaded, scenario.expected["rules"]).filter(external_id__startswith="sbx-").exists()


# --- docs ----------------------------------------------------------------------------


def doc_section(name: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(rf"^### `{re.escape(name)}`\n(.*?)(?=^### |^## |\Z)", text, re.S | re.M)
    assert match, f"docs/sandbox.md has no '### `{name}`' section"
    return match.group(1)


def figure_line(expected: dict) -> str:
    return (
        f"Preview on **{expected['channel']}**: matching **{expected['matching']}**, "
        f"no {ADDRESS[expected['channel']]} **-{expected['removed_no_address']}**, "
        f"no {expected['channel']} consent **-{expected['removed_no_consent']}**, "
        f"suppressed **-{expected['removed_suppressed']}**, "
        f"regional restriction **-{expected['removed_regional_restriction']}**, "
        f"reachable **{expected['reachable']}**."
    )


@pytest.mark.parametrize("name", NAMES)
def test_the_docs_state_the_rules_and_every_expected_figure(name):
    expected = SCENARIOS_BY_NAME[name].expected
    section = doc_section(name)

    blocks = re.findall(r"```json\n(.*?)```", section, re.S)
    assert blocks, f"no rules block in the {name} section"
    assert json.loads(blocks[0]) == expected["rules"]
    assert figure_line(expected) in section
    assert f"{len(SCENARIOS_BY_NAME[name].profiles)} profiles" in section


def test_the_docs_state_the_extra_figures():
    mixed = SCENARIOS_BY_NAME["mixed-consent"].expected["consent_breakdown"]
    section = doc_section("mixed-consent")
    for status, count in mixed.items():
        assert f"{status} **{count}**" in section

    duplicates = SCENARIOS_BY_NAME["duplicate-profile"].expected["distinct_emails"]
    assert f"distinct email addresses **{duplicates}**" in doc_section("duplicate-profile")


def test_scenario_event_times_stay_inside_the_documented_window():
    # "within 7 days" figures hold for four days after a reset: nothing recent is older than 3 days
    for scenario in SCENARIOS:
        for profile in scenario.profiles:
            for _, days_ago, _ in profile.events:
                assert days_ago <= 3 or days_ago >= 10
