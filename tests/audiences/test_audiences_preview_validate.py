"""Preview (unsaved rules and saved audiences) and validate through the API, against
hand-counted data; the sample masked for every role but compliance_reviewer."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.models import AudienceState, Profile, RegionalRestriction, SuppressionEntry, SuppressionList
from governance.models import AuditEvent
from tests.factories import AudienceFactory, AudienceVersionFactory, ConsentFactory, ProfileFactory

pytestmark = pytest.mark.django_db

PREVIEW = "/api/v1/audiences/preview"
CUSTOMERS = {"attr": "lifecycle_stage", "op": "eq", "value": "customer"}


@pytest.fixture
def people(sandbox):
    """Twelve customers, hand-counted for email:

    - EU 0–9, UK 0–1. Email consent granted (web form) for EU 0–5 and both UK; granted but
      implied for EU 6; denied for EU 7; none for EU 8–9 → 9 consented, 3 not.
    - The global list suppresses EU 0 by external id and EU 1 by email hash (both consented).
    - "EU profiles need explicit consent" removes EU 6 (implied consent).
    - A lapsed EU profile with consent, never a customer.
    → reachable: EU 2–5 and UK 0–1 = 6.
    """
    eu = [ProfileFactory(environment=sandbox, region="EU", external_id=f"eu-{i}") for i in range(10)]
    uk = [ProfileFactory(environment=sandbox, region="UK", external_id=f"uk-{i}") for i in range(2)]
    lapsed = ProfileFactory(environment=sandbox, region="EU", external_id="lapsed-0", lifecycle_stage="lapsed")
    for profile in [*eu[:6], *uk, lapsed]:
        ConsentFactory(profile=profile, channel="email", status="granted", source="web_form")
    ConsentFactory(profile=eu[6], channel="email", status="granted", source="implied")
    ConsentFactory(profile=eu[7], channel="email", status="denied")
    glob = SuppressionList.objects.get(environment=sandbox, is_global=True)
    SuppressionEntry.objects.create(suppression_list=glob, external_id="eu-0")
    SuppressionEntry.objects.create(
        suppression_list=glob, email_hash=hashlib.sha256(eu[1].email.lower().encode()).hexdigest()
    )
    RegionalRestriction.objects.create(
        environment=sandbox, region="EU", kind="explicit_consent", description="EU profiles need explicit consent"
    )
    RegionalRestriction.objects.create(
        environment=sandbox, region="UK", channel="sms", kind="blocked", description="SMS may not target the UK"
    )
    return eu, uk


def test_preview_of_unsaved_rules_gives_the_hand_counted_waterfall(api, people):
    response = api("analyst").post(PREVIEW, {"rules": CUSTOMERS, "channel": "email"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 12
    assert body["reachable"] == 6
    assert [(s["step"], s["remaining"], s["removed"]) for s in body["waterfall"]] == [
        ("matching", 12, 0),
        ("no address", 12, 0),
        ("without consent", 9, 3),
        ("suppressed", 7, 2),
        ("regional restriction", 6, 1),
        ("reachable", 6, 0),
    ]
    assert body["breakdowns"] == {
        "region": {"EU": 10, "UK": 2},
        "lifecycle_stage": {"customer": 12},
        "consent": {"granted": 9, "denied": 1, "unknown": 2},
    }
    assert sorted(p["external_id"] for p in body["sample"]) == ["eu-2", "eu-3", "eu-4", "eu-5", "uk-0", "uk-1"]
    assert {w["code"] for w in body["warnings"]} == {"consent_missing", "regional_restriction"}
    assert '"preview"' in response["RateLimit-Policy"]


@pytest.mark.parametrize("who", ["analyst", "operator", "approver", "developer", "admin"])
def test_the_sample_is_masked_for_every_role_but_compliance(api, people, who):
    body = api(who).post(PREVIEW, {"rules": CUSTOMERS, "channel": "email"}, format="json").json()

    assert body["pii_masked"] is True
    row = next(p for p in body["sample"] if p["external_id"] == "eu-2")
    assert row["email"] == "e***@e***.test"
    assert row["first_name"] == "A***" and row["last_name"] == "E***" and row["phone"] == "***23"
    assert not AuditEvent.objects.filter(action="profile.pii_read").exists()


def test_compliance_reviewers_see_the_sample_unmasked_and_the_read_is_audited(api, people):
    body = api("compliance").post(PREVIEW, {"rules": CUSTOMERS, "channel": "email"}, format="json").json()

    assert body["pii_masked"] is False
    row = next(p for p in body["sample"] if p["external_id"] == "eu-2")
    assert row["email"] == "eu-2@example.test" and row["first_name"] == "Ann"
    event = AuditEvent.objects.get(action="profile.pii_read")
    assert sorted(event.changes["profile_ids"]) == sorted(p["id"] for p in body["sample"])


def test_an_empty_sample_is_not_audited_as_a_pii_read(api, people):
    rules = {"attr": "region", "op": "eq", "value": "APAC"}

    body = api("compliance").post(PREVIEW, {"rules": rules, "channel": "email"}, format="json").json()

    assert body["count"] == 0 and body["sample"] == []
    assert not AuditEvent.objects.filter(action="profile.pii_read").exists()


def test_preview_of_invalid_rules_is_422_with_pointers(api, people):
    rules = {"all": [{"attr": "lifecycle_stage", "op": "eq", "value": "custmer"}, {"event": "Cart Abandoned"}]}

    response = api("analyst").post(PREVIEW, {"rules": rules, "channel": "email"}, format="json")

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_rules"
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("/rules/all/0/value", "unknown_value"),
        ("/rules/all/1/event", "bad_event_type"),
    ]
    assert "did you mean 'customer'" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"rules": CUSTOMERS, "channel": "fax"}, 422, "invalid_input"),
        ({"rules": CUSTOMERS}, 422, "invalid_input"),
        ({"rules": CUSTOMERS, "channel": "email", "save": True}, 400, "unknown_fields"),
    ],
)
def test_preview_refuses_bad_requests(api, body, status, code):
    response = api("analyst").post(PREVIEW, body, format="json")

    assert (response.status_code, response.json()["code"]) == (status, code)


def test_preview_takes_a_fixed_number_of_queries(api, sandbox, people):
    client = api("analyst")
    body = {"rules": CUSTOMERS, "channel": "email"}
    client.post(PREVIEW, body, format="json")

    with CaptureQueriesContext(connection) as few:
        client.post(PREVIEW, body, format="json")
    for index in range(30):
        ProfileFactory(environment=sandbox, region="EU", external_id=f"more-{index}")
    with CaptureQueriesContext(connection) as many:
        client.post(PREVIEW, body, format="json")

    assert len(few) == len(many)
    # the restrictions, the one grouped pass (count, waterfall, breakdowns), the sample (the
    # token is cached); on PostgreSQL also the statements' settings (jit, work_mem), in the
    # test's transaction (outside one, the preview's own BEGIN and COMMIT come on top)
    settings = 1 if connection.vendor == "postgresql" else 0
    assert len(many) == 3 + settings, [q["sql"][:120] for q in many.captured_queries]


def test_preview_of_a_saved_audience_uses_its_rules_and_channel(api, sandbox, people):
    audience = AudienceFactory(environment=sandbox, name="Customers", rules=CUSTOMERS, channel="email")

    body = api("analyst").post(f"/api/v1/audiences/{audience.pk}/preview").json()

    assert (body["count"], body["reachable"]) == (12, 6)


def test_preview_follows_in_audience_to_the_live_members(api, sandbox, people):
    eu, uk = people
    vip = AudienceFactory(environment=sandbox, name="VIP")
    AudienceVersionFactory(audience=vip, live=True, memberships=[eu[2], eu[3], uk[0]])
    audience = AudienceFactory(
        environment=sandbox, name="VIP customers", rules={"all": [CUSTOMERS, {"in_audience": vip.pk}]}
    )

    body = api("analyst").post(f"/api/v1/audiences/{audience.pk}/preview").json()

    assert (body["count"], body["reachable"]) == (3, 3)


def test_preview_of_a_saved_audience_whose_reference_was_archived_is_422(api, sandbox, people):
    vip = AudienceFactory(environment=sandbox, name="VIP")
    AudienceVersionFactory(audience=vip, live=True)
    audience = AudienceFactory(environment=sandbox, name="Uses VIP", rules={"in_audience": vip.pk})
    vip.state = AudienceState.ARCHIVED
    vip.save()

    response = api("analyst").post(f"/api/v1/audiences/{audience.pk}/preview")

    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "pointer": "/rules/in_audience",
        "code": "audience_archived",
        "message": f"Audience {vip.pk} is archived.",
        "hint": "Archived audiences cannot be used in rules; remove this condition or use another audience.",
    }


def test_a_preview_without_a_channel_reports_the_rules_problems_too(api, people):
    """Every problem at once (issue 11, item 8): the missing channel and the misspelt
    attribute with its did-you-mean, in one 422."""
    rules = {"all": [{"attr": "regoin", "op": "eq", "value": "EU"}, {"attr": "region", "op": "eq", "value": "Europe"}]}

    response = api("analyst").post(PREVIEW, {"rules": rules}, format="json")

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_input"
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("/channel", "required"),
        ("/rules/all/0/attr", "unknown_attribute"),
        ("/rules/all/1/value", "unknown_value"),
    ]
    assert "did you mean 'region'" in body["errors"][1]["message"]


def test_a_preview_whose_only_problem_is_the_rules_stays_invalid_rules(api, people):
    response = api("analyst").post(
        PREVIEW, {"rules": {"attr": "regoin", "op": "eq", "value": "EU"}, "channel": "email"}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (422, "invalid_rules")


def test_a_user_without_a_role_may_not_preview(api, people):
    response = api("nobody").post(PREVIEW, {"rules": CUSTOMERS, "channel": "email"}, format="json")

    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


# --- validate -------------------------------------------------------------------------------------


def _checks(response) -> dict[str, dict]:
    assert response.status_code == 200, response.content
    return {check["code"]: check for check in response.json()["checks"]}


def test_validate_reports_each_check_with_counts_and_hints(api, sandbox, people):
    audience = AudienceFactory(environment=sandbox, name="Customers", rules=CUSTOMERS, channel="email")

    response = api("analyst").post(f"/api/v1/audiences/{audience.pk}/validate")

    checks = _checks(response)
    assert response.json()["valid"] is True
    assert list(checks) == [
        "schema",
        "required_metadata",
        "known_names",
        "address",
        "consent",
        "regional_restrictions",
        "suppression_overlap",
        "size",
    ]
    assert {code: check["status"] for code, check in checks.items()} == {
        "schema": "passed",
        "required_metadata": "passed",
        "known_names": "passed",
        "address": "passed",
        "consent": "warning",
        "regional_restrictions": "warning",
        "suppression_overlap": "warning",
        "size": "passed",
    }
    assert checks["consent"]["count"] == 3
    assert checks["consent"]["message"] == "3 of 12 matching profiles lack email consent; they will not be members."
    assert '{"consent": "email", "is": true}' in checks["consent"]["hint"]
    assert checks["regional_restrictions"]["count"] == 1
    assert [(r["description"], r["removes"]) for r in checks["regional_restrictions"]["restrictions"]] == [
        ("EU profiles need explicit consent", 1)
    ]
    assert "EU profiles need explicit consent (1)" in checks["regional_restrictions"]["message"]
    assert checks["suppression_overlap"]["count"] == 2
    assert checks["size"]["count"] == 6
    assert all(check["message"] for check in checks.values())
    assert all(check["hint"] for check in checks.values() if check["status"] != "passed")
    assert not AuditEvent.objects.exists(), "validate is a read"


def test_validate_lists_only_the_restrictions_of_the_channel(api, sandbox, people):
    _eu, uk = people
    for profile in uk:
        ConsentFactory(profile=profile, channel="sms", status="granted")
    audience = AudienceFactory(
        environment=sandbox, name="UK sms", rules={"attr": "region", "op": "eq", "value": "UK"}, channel="sms"
    )

    checks = _checks(api("analyst").post(f"/api/v1/audiences/{audience.pk}/validate"))

    restrictions = checks["regional_restrictions"]["restrictions"]
    assert sorted(r["description"] for r in restrictions) == [
        "EU profiles need explicit consent",
        "SMS may not target the UK",
    ]
    assert checks["regional_restrictions"]["count"] == 2
    assert checks["size"]["status"] == "failed"
    assert checks["size"]["message"] == "Regional restrictions remove every remaining profile."


def test_validate_fails_size_when_nothing_matches(api, sandbox, people):
    audience = AudienceFactory(
        environment=sandbox, name="Nobody", rules={"attr": "region", "op": "eq", "value": "APAC"}
    )

    response = api("analyst").post(f"/api/v1/audiences/{audience.pk}/validate")

    checks = _checks(response)
    assert response.json()["valid"] is False
    assert checks["size"]["status"] == "failed" and checks["size"]["passed"] is False
    assert checks["size"]["message"] == "No profile matches the rules."
    assert checks["consent"]["status"] == "passed"


def test_validate_says_when_nobody_has_consent(api, sandbox, people):
    Profile.objects.filter(environment=sandbox).update(push_token="f" * 64)
    audience = AudienceFactory(environment=sandbox, name="Push customers", rules=CUSTOMERS, channel="push")

    checks = _checks(api("analyst").post(f"/api/v1/audiences/{audience.pk}/validate"))

    assert checks["address"]["status"] == "passed"
    assert checks["consent"]["count"] == 12
    assert checks["size"]["message"] == "12 profiles match, but none with an address has push consent."


def test_validate_checks_that_people_have_an_address_for_the_channel(api, sandbox, people):
    """People without an address for the channel are never reachable: a check with a hint
    (issue 11, item 2)."""
    eu, uk = people
    Profile.objects.filter(pk__in=[eu[2].pk, uk[0].pk]).update(email=None)
    email = AudienceFactory(environment=sandbox, name="Customers by email", rules=CUSTOMERS, channel="email")
    push = AudienceFactory(environment=sandbox, name="Customers by push", rules=CUSTOMERS, channel="push")

    checks = _checks(api("analyst").post(f"/api/v1/audiences/{email.pk}/validate"))
    nobody = _checks(api("analyst").post(f"/api/v1/audiences/{push.pk}/validate"))

    assert checks["address"]["status"] == "warning" and checks["address"]["count"] == 2
    assert checks["address"]["message"] == (
        "2 of 12 matching profiles have no email address; they will not be members."
    )
    assert '{"attr": "email", "op": "is_null", "value": false}' in checks["address"]["hint"]
    assert "POST /api/v1/profiles/bulk" in checks["address"]["hint"]
    assert checks["consent"]["count"] == 3  # of the ten with an address
    assert checks["size"]["count"] == 4
    assert nobody["address"]["count"] == 12
    assert (nobody["size"]["status"], nobody["size"]["message"]) == (
        "failed",
        "12 profiles match, but none has a push token.",
    )


def test_validate_flags_missing_metadata(api, sandbox, people):
    audience = AudienceFactory(environment=sandbox, name="Thin", rules=CUSTOMERS, purpose="", description="  ")

    response = api("analyst").post(f"/api/v1/audiences/{audience.pk}/validate")

    checks = _checks(response)
    assert response.json()["valid"] is False
    assert checks["required_metadata"]["status"] == "failed"
    assert checks["required_metadata"]["missing"] == ["purpose", "description"]
    assert f"PATCH /api/v1/audiences/{audience.pk}" in checks["required_metadata"]["hint"]


def test_validate_of_invalid_rules_fails_schema_and_skips_the_data_checks(api, sandbox, people):
    vip = AudienceFactory(environment=sandbox, name="VIP draft")
    audience = AudienceFactory(
        environment=sandbox,
        name="Broken",
        rules={"all": [{"in_audience": vip.pk}, {"attr": "region", "op": "eq", "value": "Europe"}]},
    )

    response = api("analyst").post(f"/api/v1/audiences/{audience.pk}/validate")

    checks = _checks(response)
    assert response.json()["valid"] is False
    assert checks["schema"]["status"] == "failed"
    assert [(e["pointer"], e["code"]) for e in checks["schema"]["errors"]] == [
        ("/rules/all/0/in_audience", "audience_not_published"),
        ("/rules/all/1/value", "unknown_value"),
    ]
    assert checks["schema"]["message"].startswith("The rules have 2 problems, e.g. at /rules/all/0/in_audience")
    for code in ("consent", "regional_restrictions", "suppression_overlap", "size"):
        assert checks[code]["status"] == "skipped"


def test_validate_passes_cleanly_with_consent_in_the_rules(api, sandbox, people):
    rules = {
        "all": [
            CUSTOMERS,
            {"consent": "email", "is": True},
            {"attr": "region", "op": "eq", "value": "UK"},
        ]
    }
    audience = AudienceFactory(environment=sandbox, name="UK customers with consent", rules=rules)

    response = api("analyst").post(f"/api/v1/audiences/{audience.pk}/validate")

    checks = _checks(response)
    assert response.json()["valid"] is True
    assert all(check["status"] == "passed" for check in checks.values()), checks
    assert checks["regional_restrictions"]["message"].startswith("Restrictions apply to email here")


def test_validate_takes_a_fixed_number_of_queries(api, sandbox, people):
    audience = AudienceFactory(environment=sandbox, name="Customers", rules=CUSTOMERS)
    client = api("analyst")
    client.post(f"/api/v1/audiences/{audience.pk}/validate")

    with CaptureQueriesContext(connection) as few:
        client.post(f"/api/v1/audiences/{audience.pk}/validate")
    for index in range(20):
        ProfileFactory(environment=sandbox, external_id=f"more-{index}")
    with CaptureQueriesContext(connection) as many:
        client.post(f"/api/v1/audiences/{audience.pk}/validate")

    assert len(few) == len(many) <= 6, [q["sql"][:120] for q in many.captured_queries]
