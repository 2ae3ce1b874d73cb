"""Preview: the waterfall, breakdowns and sample, against hand-counted data."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audiences.models import RegionalRestriction, SuppressionEntry, SuppressionList
from audiences.reach import compute_preview, reachable_queryset
from tests.factories import ConsentFactory, ProfileFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(sandbox):
    """Ten EU customers: 7 with email consent (1 of them implied, 1 without an email address),
    3 without; one consented person suppressed by external id and one by email; plus two UK
    customers, consented."""
    eu = [ProfileFactory(environment=sandbox, region="EU", external_id=f"eu-{i}") for i in range(10)]
    eu[5].email = None
    eu[5].save()
    uk = [ProfileFactory(environment=sandbox, region="UK", external_id=f"uk-{i}") for i in range(2)]
    for p in eu[:6] + uk:
        ConsentFactory(profile=p, channel="email", status="granted", source="web_form")
    ConsentFactory(profile=eu[6], channel="email", status="granted", source="implied")
    ConsentFactory(profile=eu[7], channel="email", status="denied")
    glob = SuppressionList.objects.get(environment=sandbox, is_global=True)
    SuppressionEntry.objects.create(suppression_list=glob, external_id="eu-0")
    import hashlib

    SuppressionEntry.objects.create(
        suppression_list=glob, email_hash=hashlib.sha256(eu[1].email.lower().encode()).hexdigest()
    )
    return eu, uk


def test_waterfall_counts_each_step(sandbox, people):
    rules = {"attr": "lifecycle_stage", "op": "eq", "value": "customer"}
    RegionalRestriction.objects.create(
        environment=sandbox, region="EU", kind="explicit_consent", description="EU profiles need explicit consent"
    )

    result = compute_preview(environment=sandbox, rules=rules, channel="email", now=timezone.now())

    assert result["count"] == 12
    assert [(s["step"], s["remaining"], s["removed"]) for s in result["waterfall"]] == [
        ("matching", 12, 0),
        ("no address", 11, 1),
        ("without consent", 8, 3),
        ("suppressed", 6, 2),
        ("regional restriction", 5, 1),
        ("reachable", 5, 0),
    ]
    assert result["reachable"] == 5
    assert result["breakdowns"]["region"] == {"EU": 10, "UK": 2}
    assert result["breakdowns"]["consent"] == {"granted": 9, "denied": 1, "unknown": 2}
    assert len(result["sample"]) == 5 and "eu-5" not in {p.external_id for p in result["sample"]}
    assert {w["code"] for w in result["warnings"]} == {"no_address", "consent_missing", "regional_restriction"}
    (no_address,) = (w for w in result["warnings"] if w["code"] == "no_address")
    assert no_address["message"] == "1 of 12 profiles have no email address; they will not be members."
    assert '{"attr": "email", "op": "is_null", "value": false}' in no_address["hint"]
    (consent,) = (w for w in result["warnings"] if w["code"] == "consent_missing")
    assert consent["message"].startswith("3 of 12 profiles lack email consent")


@pytest.mark.parametrize(
    ("channel", "column", "value", "words"),
    [
        ("sms", "phone", "+447700900123", "phone number"),
        ("push", "push_token", "f" * 64, "push token"),
        ("ads", "phone", "+447700900123", "email address or phone number"),
    ],
)
def test_each_channel_needs_its_own_contact_point(sandbox, channel, column, value, words):
    """sms needs a phone, push a push token, ads an email or a phone (issue 11, item 2)."""
    has = ProfileFactory(environment=sandbox, **{"email": None, "phone": None, column: value})
    empty = ProfileFactory(environment=sandbox, email=None, phone=None, push_token="")
    for profile in (has, empty):
        ConsentFactory(profile=profile, channel=channel, status="granted")

    result = compute_preview(environment=sandbox, rules={"all": []}, channel=channel)

    assert result["waterfall"][1] == {"step": "no address", "remaining": 1, "removed": 1}
    assert [p.pk for p in result["sample"]] == [has.pk]
    assert f"1 of 2 profiles have no {words}" in {w["code"]: w["message"] for w in result["warnings"]}["no_address"]
    assert set(reachable_queryset(sandbox, {"all": []}, channel).values_list("pk", flat=True)) == {has.pk}


def test_blocked_region_removes_it_for_that_channel_only(sandbox, people):
    RegionalRestriction.objects.create(
        environment=sandbox, region="UK", channel="sms", kind="blocked", description="SMS may not target the UK"
    )
    rules = {"attr": "region", "op": "eq", "value": "UK"}
    assert compute_preview(environment=sandbox, rules=rules, channel="email")["reachable"] == 2
    for p in people[1]:
        ConsentFactory(profile=p, channel="sms", status="granted")
    sms = compute_preview(environment=sandbox, rules=rules, channel="sms")
    assert sms["waterfall"][4] == {"step": "regional restriction", "remaining": 0, "removed": 2}


def test_reachable_queryset_is_what_preview_counts(sandbox, people):
    rules = {"all": [{"attr": "region", "op": "in", "value": ["EU", "UK"]}]}
    preview = compute_preview(environment=sandbox, rules=rules, channel="email")
    assert reachable_queryset(sandbox, rules, "email").count() == preview["reachable"] == 6


@pytest.mark.parametrize(
    "rules",
    [
        {"any": [{"consent": "email", "is": True}, {"event": "purchase", "within_days": 7}]},
        {"all": [{"consent": "email", "is": True}, {"attr": "region", "op": "in", "value": ["EU", "UK"]}]},
    ],
)
def test_preview_takes_a_fixed_number_of_queries(sandbox, people, rules):
    with CaptureQueriesContext(connection) as few:
        compute_preview(environment=sandbox, rules=rules, channel="email")
    for index in range(5):
        ProfileFactory(environment=sandbox, region="UK", lifecycle_stage="lead", external_id=f"more-{index}")
    for region in ("EU", "UK"):
        RegionalRestriction.objects.create(
            environment=sandbox, region=region, kind="explicit_consent", description=f"{region} needs explicit consent"
        )
    with CaptureQueriesContext(connection) as many:
        compute_preview(environment=sandbox, rules=rules, channel="email")

    # the restrictions, the one grouped pass (count, waterfall, breakdowns), the sample;
    # on PostgreSQL also the statements' settings (jit, work_mem), in the caller's transaction
    settings = 1 if connection.vendor == "postgresql" else 0
    assert len(few) == len(many) == 3 + settings, [q["sql"][:120] for q in many.captured_queries]
    assert sum("GROUP BY" in q["sql"] for q in many.captured_queries) == 1
