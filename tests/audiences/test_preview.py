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
    """Ten EU customers: 7 with email consent (1 of them implied), 3 without; one consented
    person suppressed by external id and one by email; plus two UK customers, consented."""
    eu = [ProfileFactory(environment=sandbox, region="EU", external_id=f"eu-{i}") for i in range(10)]
    uk = [ProfileFactory(environment=sandbox, region="UK", external_id=f"uk-{i}") for i in range(2)]
    for p in eu[:6] + uk:
        ConsentFactory(profile=p, channel="email", status="granted", source="web_form")
    ConsentFactory(profile=eu[6], channel="email", status="granted", source="implied")
    ConsentFactory(profile=eu[7], channel="email", status="denied")
    glob = SuppressionList.objects.create(environment=sandbox, name="global", is_global=True)
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
        ("without consent", 9, 3),
        ("suppressed", 7, 2),
        ("regional restriction", 6, 1),
        ("reachable", 6, 0),
    ]
    assert result["reachable"] == 6
    assert result["breakdowns"]["region"] == {"EU": 10, "UK": 2}
    assert result["breakdowns"]["consent"] == {"granted": 9, "denied": 1, "unknown": 2}
    assert len(result["sample"]) == 6
    assert {w["code"] for w in result["warnings"]} == {"consent_missing", "regional_restriction"}


def test_blocked_region_removes_it_for_that_channel_only(sandbox, people):
    RegionalRestriction.objects.create(
        environment=sandbox, region="UK", channel="sms", kind="blocked", description="SMS may not target the UK"
    )
    rules = {"attr": "region", "op": "eq", "value": "UK"}
    assert compute_preview(environment=sandbox, rules=rules, channel="email")["reachable"] == 2
    for p in people[1]:
        ConsentFactory(profile=p, channel="sms", status="granted")
    sms = compute_preview(environment=sandbox, rules=rules, channel="sms")
    assert sms["waterfall"][3] == {"step": "regional restriction", "remaining": 0, "removed": 2}


def test_reachable_queryset_is_what_preview_counts(sandbox, people):
    rules = {"all": [{"attr": "region", "op": "in", "value": ["EU", "UK"]}]}
    preview = compute_preview(environment=sandbox, rules=rules, channel="email")
    assert reachable_queryset(sandbox, rules, "email").count() == preview["reachable"] == 7


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
