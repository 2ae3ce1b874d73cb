"""Differential tests of the preview: its count, waterfall, breakdowns and sample, and the
members publish would materialize, against a plain-Python evaluation of the same data.

The preview computes everything in one grouped pass (audiences/reach.py); the reference
here walks the profiles one by one: the rules (tests/audiences/reference.py), then an
address for the channel, consent for the channel, suppression lists by external id and by
email hash, and the regional restrictions, each person leaving at the first step that
applies.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.models import (
    IMPLIED_CONSENT_SOURCES,
    Audience,
    AudienceVersion,
    Consent,
    Membership,
    RegionalRestriction,
    SuppressionEntry,
    SuppressionList,
)
from audiences.reach import (
    SAMPLE_SIZE,
    compute_preview,
    matching_queryset,
    reach_stats,
    reachability,
    reachable_queryset,
)
from tests.audiences.reference import evaluate
from tests.audiences.test_rules_differential import HAND_WRITTEN, _trees, build_world

pytestmark = pytest.mark.django_db

CHANNELS = ("email", "sms", "push", "ads")
SOURCES = ("web_form", "implied", "", "soft_opt_in", "checkout", "legitimate_interest")


def _hash(email: str | None) -> str | None:
    return hashlib.sha256(email.lower().encode()).hexdigest() if email is not None else None


# The contact point of each channel, stated independently of audiences/reach.py: an empty
# value is no address.
ADDRESSES = {
    "email": lambda p: bool(p.email),
    "sms": lambda p: bool(p.phone),
    "push": lambda p: bool(p.push_token),
    "ads": lambda p: bool(p.email) or bool(p.phone),
}


@pytest.fixture
def scene(sandbox, production):
    """The differential world, plus consent sources (some implied), suppression lists of
    both kinds, entries of another environment that must not count, and restrictions."""
    world = build_world(sandbox)
    profiles = world["profiles"]
    consents = list(Consent.objects.filter(profile__environment=sandbox).order_by("pk"))
    for index, consent in enumerate(consents):
        consent.source = SOURCES[index % len(SOURCES)]
    Consent.objects.bulk_update(consents, ["source"])

    glob = SuppressionList.objects.get(environment=sandbox, is_global=True)
    named = SuppressionList.objects.create(environment=sandbox, name="complaints")
    by_id = {p.external_id for p in profiles[::7]}
    # Some addresses are mixed-case (P3@Mail.Example): listed by the hash of the lower-cased one.
    by_email = {_hash(p.email) for p in profiles[3::5] if p.email}
    SuppressionEntry.objects.bulk_create(
        [SuppressionEntry(suppression_list=glob, external_id=ext) for ext in sorted(by_id)]
        + [SuppressionEntry(suppression_list=named, email_hash=digest) for digest in sorted(by_email)]
        + [SuppressionEntry(suppression_list=named, external_id="nobody-here")]
    )
    elsewhere = SuppressionList.objects.get(environment=production, is_global=True)
    SuppressionEntry.objects.bulk_create(
        [SuppressionEntry(suppression_list=elsewhere, external_id=p.external_id) for p in profiles[1::4]]
    )

    for region, channel, kind, active in [
        ("EU", "", "explicit_consent", True),
        ("APAC", "sms", "blocked", True),
        ("UK", "email", "explicit_consent", True),
        ("UK", "push", "blocked", True),
        ("NA", "", "blocked", False),
    ]:
        RegionalRestriction.objects.create(
            environment=sandbox,
            region=region,
            channel=channel,
            kind=kind,
            is_active=active,
            description=f"{region} {channel or 'all'} {kind}",
        )
    RegionalRestriction.objects.create(
        environment=production, region="EU", channel="", kind="blocked", description="not here"
    )
    return {
        **world,
        "consents": {(c.profile_id, c.channel): (c.status, c.source) for c in consents},
        "suppressed_ids": by_id,
        "suppressed_hashes": by_email,
        "restrictions": list(
            RegionalRestriction.objects.filter(environment=sandbox, is_active=True).values("region", "channel", "kind")
        ),
    }


def expected(scene: dict[str, Any], rule: dict[str, Any], channel: str) -> dict[str, Any]:
    """The preview, profile by profile."""
    world = scene["world"]
    matching = sorted((p for p in scene["profiles"] if evaluate(rule, p, world)), key=lambda p: p.pk)
    remaining = [len(matching), 0, 0, 0, 0]
    reachable = []
    statuses: Counter[str] = Counter()
    for profile in matching:
        status, source = scene["consents"].get((profile.pk, channel), (None, ""))
        statuses[status or "unknown"] += 1
        if not ADDRESSES[channel](profile):
            continue
        remaining[1] += 1
        if status != "granted":
            continue
        remaining[2] += 1
        if profile.external_id in scene["suppressed_ids"] or _hash(profile.email) in scene["suppressed_hashes"]:
            continue
        remaining[3] += 1
        explicit = source not in IMPLIED_CONSENT_SOURCES
        if any(
            r["region"] == profile.region and r["channel"] in ("", channel) and (r["kind"] == "blocked" or not explicit)
            for r in scene["restrictions"]
        ):
            continue
        remaining[4] += 1
        reachable.append(profile.pk)
    steps = ["matching", "no address", "without consent", "suppressed", "regional restriction"]
    waterfall = [{"step": "matching", "remaining": remaining[0], "removed": 0}]
    for step, before, after in zip(steps[1:], remaining[:-1], remaining[1:], strict=True):
        waterfall.append({"step": step, "remaining": after, "removed": before - after})
    waterfall.append({"step": "reachable", "remaining": remaining[4], "removed": 0})
    return {
        "count": remaining[0],
        "reachable": remaining[4],
        "waterfall": waterfall,
        "breakdowns": {
            "region": dict(Counter(p.region or "unknown" for p in matching)),
            "lifecycle_stage": dict(Counter(p.lifecycle_stage or "unknown" for p in matching)),
            "consent": dict(statuses),
        },
        "sample": reachable[:SAMPLE_SIZE],
        "members": set(reachable),
    }


def check(scene: dict[str, Any], rule: dict[str, Any], channel: str) -> None:
    env, now, live = scene["env"], scene["world"].now, scene["live"]
    want = expected(scene, rule, channel)

    got = compute_preview(environment=env, rules=rule, channel=channel, live_versions=live, now=now)

    shown = {key: got[key] for key in ("count", "reachable", "waterfall", "breakdowns")}
    shown["sample"] = [p.pk for p in got["sample"]]
    assert shown == {key: want[key] for key in shown}, f"rule {rule}, channel {channel}"
    # Publish materializes `reachable_queryset`: the people the preview counts as reachable,
    # also where it leaves out the consent filter the rules already demand (against the
    # plain matching ∩ reachability).
    members = set(reachable_queryset(env, rule, channel, now=now, live_versions=live).values_list("pk", flat=True))
    gate = reachability(env, channel)
    gated = matching_queryset(env, rule, now=now, live_versions=live).filter(gate.reachable)
    assert members == set(gated.values_list("pk", flat=True)) == want["members"], f"rule {rule}, channel {channel}"


# Rules whose consent condition for the channel the preview folds into its consent join
# (at the root, under `all`, nested), and ones where it must not (under `any`, `not`, false).
CONSENT_SHAPES = [
    {"consent": "email", "is": True},
    {"all": [{"consent": "email", "is": True}]},
    {"all": []},
    {"all": [{"attr": "region", "op": "in", "value": ["EU", "UK"]}, {"consent": "email", "is": True}]},
    {
        "all": [
            {"all": [{"consent": "email", "is": True}, {"attr": "lifecycle_stage", "op": "neq", "value": "lead"}]},
            {"consent": "sms", "is": True},
        ]
    },
    {"any": [{"consent": "email", "is": True}, {"attr": "region", "op": "eq", "value": "APAC"}]},
    {"not": {"consent": "email", "is": True}},
    {"consent": "email", "is": False},
    {"all": [{"consent": "email", "is": True}, {"consent": "email", "is": True}]},
]


@pytest.mark.slow  # 36 rules × 4 channels, each on a fresh scene: about 9 seconds
@pytest.mark.parametrize("rule", CONSENT_SHAPES + HAND_WRITTEN, ids=lambda r: str(r)[:60])
def test_the_preview_matches_the_reference(scene, rule):
    for channel in CHANNELS:
        check(scene, rule, channel)


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("rule", CONSENT_SHAPES[:4] + HAND_WRITTEN[:3] + HAND_WRITTEN[-3:], ids=lambda r: str(r)[:60])
def test_publish_materializes_what_the_preview_counts(scene, rule, channel, monkeypatch):
    """Preview against publish: the version's waterfall, step by step (the address step
    too), and its members are the preview's."""
    from django.utils import timezone

    from audiences.publishing.build import materialize

    world = scene["world"]
    # Publish resolves in_audience through the live version; the preview is told it.
    Audience.objects.filter(pk=scene["audience_id"]).update(
        state="published", live_version_id=scene["live"][scene["audience_id"]]
    )
    audience = Audience.objects.create(
        environment=scene["env"],
        name="differential",
        owner_team_id=Audience.objects.get(pk=scene["audience_id"]).owner_team_id,
        channel=channel,
        purpose="p",
        description="d",
        rules=rule,
    )
    version = AudienceVersion.objects.create(audience=audience, number=1, rules=rule, channel=channel)
    monkeypatch.setattr(timezone, "now", lambda: world.now)  # one "now" for both evaluations

    build = materialize(version)
    preview = compute_preview(
        environment=scene["env"], rules=rule, channel=channel, live_versions=scene["live"], now=world.now
    )

    assert build.waterfall == preview["waterfall"] == expected(scene, rule, channel)["waterfall"]
    members = set(Membership.objects.filter(version=version).values_list("profile_id", flat=True))
    assert members == expected(scene, rule, channel)["members"]


def test_validate_counts_the_same_waterfall(scene):
    rule = {"all": [{"attr": "region", "op": "in", "value": ["EU", "UK", "APAC"]}, {"consent": "sms", "is": True}]}
    for channel in CHANNELS:
        want = expected(scene, rule, channel)
        stats = reach_stats(scene["env"], rule, channel, scene["live"])
        remaining = [step["remaining"] for step in want["waterfall"]]
        assert (stats["matching"], stats["addressed"], stats["consented"], stats["reachable"]) == (
            remaining[0],
            remaining[1],
            remaining[2],
            remaining[4],
        )
        assert stats["suppressed_removed"] == remaining[2] - remaining[3]
        assert stats["restricted_removed"] == remaining[3] - remaining[4]


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_rules_preview_like_the_reference(scene, data):
    rule = data.draw(_trees(scene["audience_id"]))
    channel = data.draw(st.sampled_from(CHANNELS))
    check(scene, rule, channel)
