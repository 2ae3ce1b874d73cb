"""One reader of dates (marketerapi/moments.py) for every door and the rules (issue 12, 500s):
a UTC offset beyond ±15:59 — which PostgreSQL cannot store — used to pass the parsers and
fail in the database (`DataError`, a 500). Now each date parameter answers 400
`bad_utc_offset` (or `not_a_date`) naming the parameter, the rules report the condition, and
an audience saved with such a rule answers a problem that names it instead of a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audiences.models import Audience
from marketerapi.moments import BadUtcOffset, NotADate, parse_moment
from tests.factories import AudienceFactory, ProfileFactory
from tests.refusals import refused

BAD_OFFSETS = [
    "2026-01-01T00:00:00+99:00",
    "2026-01-01T00:00:00+16:00",
    "2026-01-01T00:00:00-20:30",
    "2026-01-01T00:00:00+1600",
]


# --- the parser --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T09:00:00Z", datetime(2026, 11, 1, 9, tzinfo=UTC)),
        ("2026-11-01T09:00:00", datetime(2026, 11, 1, 9, tzinfo=UTC)),
        ("2026-11-01T09:00:00+15:59", datetime(2026, 11, 1, 9, tzinfo=UTC) - timedelta(hours=15, minutes=59)),
        ("2026-11-01T09:00:00-15:59", datetime(2026, 11, 1, 9, tzinfo=UTC) + timedelta(hours=15, minutes=59)),
        ("2026-11-01T09:00:00 01:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),  # "+" decoded as a space
    ],
)
def test_what_reads(text, expected):
    assert parse_moment(text, field="since") == expected


@pytest.mark.parametrize("text", BAD_OFFSETS)
def test_offsets_beyond_15_59_are_refused(text):
    with pytest.raises(BadUtcOffset) as refusal:
        parse_moment(text, field="since")
    error = refusal.value
    assert (error.status, error.code) == (400, "bad_utc_offset")
    assert "since" in error.detail and "15:59" in error.hint
    assert error.errors[0]["pointer"] == "?since"


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-13-01", "2026-01-01T25:00:00Z", "", None, 20260101, "0001-01-01T00:00:00+01:00"]
)
def test_what_is_not_a_date(value):
    with pytest.raises(NotADate) as refusal:
        parse_moment(value, field="until")
    assert refusal.value.code == "not_a_date" and refusal.value.hint


# --- every door ----------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("offset", BAD_OFFSETS)
@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/profiles/", "updated_since"),
        ("/api/v1/profiles/", "updated_before"),
        ("/api/v1/events/", "since"),
    ],
)
def test_list_parameters_refuse_bad_offsets(api, path, parameter, offset):
    ProfileFactory()

    body = refused(api("developer").get(path, {parameter: offset}), 400, "bad_utc_offset")

    assert parameter in body["detail"]
    assert body["errors"][0]["pointer"] == f"?{parameter}"


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "parameter"), [("/api/v1/profiles/", "updated_since"), ("/api/v1/events/", "since")])
def test_list_parameters_refuse_what_is_not_a_date(api, path, parameter):
    refused(api("developer").get(path, {parameter: "last tuesday"}), 400, "not_a_date")


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "parameter"), [("/api/v1/profiles/", "updated_since"), ("/api/v1/events/", "since")])
def test_list_parameters_still_take_good_dates(api, path, parameter):
    response = api("developer").get(path, {parameter: "2026-01-01T00:00:00+15:59"})

    assert response.status_code == 200, response.content


@pytest.mark.django_db
@pytest.mark.parametrize("parameter", ["since", "until"])
@pytest.mark.parametrize("offset", BAD_OFFSETS[:2])
def test_audit_since_and_until_refuse_bad_offsets(api, parameter, offset):
    for path in ("/api/v1/audit-events/", "/api/v1/audit-events/export"):
        body = refused(api("admin").get(path, {parameter: offset}), 422, "invalid_filter")
        (error,) = body["errors"]
        assert (error["parameter"], error["code"]) == (parameter, "bad_utc_offset")
        assert "15:59" in error["hint"]


@pytest.mark.django_db
def test_the_portal_audit_page_refuses_a_bad_offset_without_a_500(client, sandbox):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="auditor", groups=["approver"]))

    response = client.get("/audit/", {"since": BAD_OFFSETS[0]})

    assert 400 <= response.status_code < 500
    assert "15:59" in response.content.decode()


# --- the rules -------------------------------------------------------------------------------------------


RULE = {"attr": "created_at", "op": "after", "value": "2026-01-01T00:00:00+99:00"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "rule",
    [
        RULE,
        {"attr": "updated_at", "op": "before", "value": "2026-01-01T00:00:00-16:00"},
        {"attr": "created_at", "op": "between", "value": ["2026-01-01", "2026-02-01T00:00:00+20:00"]},
    ],
)
def test_rule_dates_with_bad_offsets_are_invalid_rules_naming_the_condition(api, rule):
    body = refused(
        api("analyst").post("/api/v1/audiences/preview", {"rules": rule, "channel": "email"}, format="json"),
        422,
        "invalid_rules",
    )

    (error,) = body["errors"]
    assert error["code"] == "bad_utc_offset" and error["pointer"].startswith("/rules/value")
    assert "15:59" in error["hint"]


@pytest.mark.django_db
def test_a_saved_audience_with_such_a_rule_answers_problems_not_500s(api, sandbox):
    # Saved before the fix: the factory writes the row as the old parser let it through.
    audience = AudienceFactory(environment=sandbox, owner_team__name="growth", rules={"all": [RULE]})
    client = api("operator")

    for action in ("preview", "publish"):
        body = refused(client.post(f"/api/v1/audiences/{audience.pk}/{action}", format="json"), 422, "invalid_rules")
        assert body["errors"][0]["pointer"] == "/rules/all/0/value"
        assert body["errors"][0]["code"] == "bad_utc_offset"
    checks = client.post(f"/api/v1/audiences/{audience.pk}/validate", format="json")
    assert checks.status_code == 200
    schema = checks.json()["checks"][0]
    assert schema["status"] == "failed" and schema["errors"][0]["code"] == "bad_utc_offset"
    assert Audience.objects.get(pk=audience.pk).live_version_id is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/v1/profile-events/bulk",
            {"events": [{"external_id": "p-1", "type": "purchase", "occurred_at": "2026-01-01T00:00:00+20:00"}]},
        ),
        (
            "/api/v1/consent/sync",
            {
                "updates": [
                    {
                        "external_id": "p-1",
                        "channel": "email",
                        "status": "granted",
                        "source": "signup_form",
                        "captured_at": "2026-01-01T00:00:00-16:00",
                    }
                ]
            },
        ),
    ],
)
def test_ingested_dates_with_bad_offsets_are_row_errors_not_500s(api, sandbox, path, body):
    ProfileFactory(environment=sandbox, external_id="p-1")

    response = api("developer").post(path, body, format="json")

    assert response.status_code == 422, response.content
    (error,) = response.json()["errors"]
    assert error["code"] == "bad_utc_offset" and error["pointer"].endswith("_at")
