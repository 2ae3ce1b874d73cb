"""Bad input to the ingestion endpoints: each refusal is problem+json with code, hint and
request_id, and leaves the database exactly as it was (profiles, consent, ledger,
profile events, outbox, audit)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.profiles import selectors
from governance.models import ApiToken, AuditEvent, Outcome
from tests.audiences.helpers import db_state
from tests.conftest import issue_test_token
from tests.factories import ConsentFactory, ProfileFactory

PROFILES = "/api/v1/profiles/bulk"
EVENTS = "/api/v1/profile-events/bulk"
CONSENT = "/api/v1/consent/sync"


@pytest.fixture
def existing(db):
    """Something in every table ingestion writes, so 'unchanged' means something."""
    profile = ProfileFactory(external_id="known", region="UK")
    ConsentFactory(profile=profile, channel="email", status="granted")
    return profile


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["hint"]
    assert body["request_id"] == response["X-Request-ID"]
    return body


# --- 413 -------------------------------------------------------------------------


def test_more_than_10000_rows_is_413_with_a_split_hint(api, existing):
    client = api("developer")
    before = db_state()

    response = client.post(PROFILES, {"profiles": [{"external_id": f"c-{i}"} for i in range(10_001)]}, format="json")

    body = assert_problem(response, 413, "batch_too_large")
    assert "10,000" in body["hint"] and "Split" in body["hint"]
    assert body["received"] == 10_001
    assert db_state() == before


@pytest.mark.parametrize(
    ("url", "key", "item"),
    [
        (EVENTS, "events", {"external_id": "known", "type": "x", "occurred_at": "2026-01-01T00:00:00Z"}),
        (
            CONSENT,
            "updates",
            {
                "external_id": "known",
                "channel": "sms",
                "status": "granted",
                "source": "t",
                "captured_at": "2026-01-01T00:00:00Z",
            },
        ),
    ],
)
def test_every_bulk_endpoint_honours_the_row_limit(api, existing, settings, url, key, item):
    settings.BULK_MAX_ROWS = 3
    before = db_state()

    response = api("developer").post(url, {key: [item] * 4}, format="json")

    body = assert_problem(response, 413, "batch_too_large")
    assert "at most 3 rows" in body["hint"]
    assert db_state() == before


# --- 400 -------------------------------------------------------------------------


@pytest.mark.parametrize("url", [PROFILES, EVENTS, CONSENT])
def test_malformed_json_is_400_naming_the_position(api, existing, url):
    before = db_state()

    response = api("developer").post(url, data='{"profiles": [{"external_id": "a"', content_type="application/json")

    body = assert_problem(response, 400, "malformed_json")
    assert "line 1 column 34 (char 33)" in body["detail"]
    assert db_state() == before


def test_unknown_top_level_field_is_400_listing_it_and_the_allowed_ones(api, existing):
    before = db_state()

    response = api("developer").post(PROFILES, {"profiles": [], "profile": []}, format="json")

    body = assert_problem(response, 400, "unknown_fields")
    assert body["errors"][0]["pointer"] == "/profile"
    assert body["allowed_fields"] == ["profiles"]
    assert db_state() == before


def test_unknown_field_in_a_row_is_400_listing_it_and_the_allowed_ones(api, existing):
    before = db_state()

    response = api("developer").post(
        PROFILES, {"profiles": [{"external_id": "a"}, {"external_id": "b", "regoin": "EU"}]}, format="json"
    )

    body = assert_problem(response, 400, "unknown_fields")
    assert body["errors"] == [
        {
            "index": 1,
            "pointer": "/profiles/1/regoin",
            "code": "unknown_field",
            "message": "Unknown field 'regoin'.",
            "hint": body["errors"][0]["hint"],
        }
    ]
    assert "region" in body["errors"][0]["hint"]
    assert "region" in body["allowed_fields"] and "external_id" in body["allowed_fields"]
    assert db_state() == before


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"rows": []}, "/rows"),
        ({}, "/profiles"),
        ({"profiles": {"external_id": "a"}}, "/profiles"),
        ([1, {"external_id": "a"}], "/profiles/0"),
    ],
)
def test_a_body_of_the_wrong_shape_is_400(api, existing, body, pointer):
    before = db_state()

    response = api("developer").post(PROFILES, body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["pointer"] == pointer
    assert db_state() == before


def test_a_json_null_body_is_400_in_json_words(api, existing):
    response = api("developer").post(PROFILES, data="null", content_type="application/json")

    body = assert_problem(response, 400, "invalid_request")
    assert "JSON null" in body["detail"]


# --- 422 -------------------------------------------------------------------------


def test_a_bad_enum_value_is_422_listing_the_allowed_values(api, existing):
    before = db_state()

    response = api("developer").post(
        PROFILES,
        {
            "profiles": [
                {"external_id": "a"},
                {"external_id": "b"},
                {"external_id": "c"},
                {"external_id": "d", "region": "EUROPE"},
            ]
        },
        format="json",
    )

    body = assert_problem(response, 422, "invalid_rows")
    [error] = body["errors"]
    assert error["index"] == 3
    assert error["pointer"] == "/profiles/3/region"
    assert error["code"] == "invalid_choice"
    assert "EU, UK, NA, LATAM, APAC, MEA" in error["hint"]
    assert db_state() == before


def test_one_bad_row_refuses_the_whole_batch_and_every_bad_row_is_listed(api, existing):
    before = db_state()
    rows = [{"external_id": f"ok-{i}"} for i in range(5)]
    rows[1]["email"] = "not-an-email"
    rows[3]["lifecycle_stage"] = "vip"
    rows[4]["country"] = "GBR"
    rows.append({"email": "a@example.test"})

    response = api("developer").post(PROFILES, {"profiles": rows}, format="json")

    body = assert_problem(response, 422, "invalid_rows")
    assert [(e["index"], e["pointer"], e["code"]) for e in body["errors"]] == [
        (1, "/profiles/1/email", "invalid"),
        (3, "/profiles/3/lifecycle_stage", "invalid_choice"),
        (4, "/profiles/4/country", "invalid"),
        (5, "/profiles/5/external_id", "required"),
    ]
    assert all(e["hint"] and e["message"] for e in body["errors"])
    assert "GB" in body["errors"][2]["hint"]
    assert db_state() == before


def test_duplicate_external_id_in_one_payload_is_reported_per_row(api, existing):
    before = db_state()

    response = api("developer").post(
        PROFILES,
        [{"external_id": "a"}, {"external_id": "b"}, {"external_id": "a", "region": "EU"}, {"external_id": "a"}],
        format="json",
    )

    body = assert_problem(response, 422, "invalid_rows")
    assert [(e["index"], e["pointer"], e["code"]) for e in body["errors"]] == [
        (2, "/profiles/2/external_id", "duplicate"),
        (3, "/profiles/3/external_id", "duplicate"),
    ]
    assert "index 0" in body["errors"][0]["message"]
    assert db_state() == before


def test_bad_consent_enum_lists_channels_and_statuses(api, existing):
    before = db_state()
    update = {"external_id": "known", "source": "t", "captured_at": "2026-01-01T00:00:00Z"}

    response = api("developer").post(
        CONSENT,
        [{**update, "channel": "fax", "status": "granted"}, {**update, "channel": "sms", "status": "yes"}],
        format="json",
    )

    body = assert_problem(response, 422, "invalid_rows")
    assert body["errors"][0]["pointer"] == "/updates/0/channel"
    assert "email, sms, push, ads" in body["errors"][0]["hint"]
    assert body["errors"][1]["pointer"] == "/updates/1/status"
    assert "granted, denied, unknown" in body["errors"][1]["hint"]
    assert db_state() == before


# --- 415, 405 --------------------------------------------------------------------


@pytest.mark.parametrize("url", [PROFILES, EVENTS, CONSENT])
def test_wrong_content_type_is_415(api, existing, url):
    before = db_state()

    response = api("developer").post(url, data="external_id=a", content_type="application/x-www-form-urlencoded")

    assert_problem(response, 415, "unsupported_media_type")
    assert db_state() == before


@pytest.mark.parametrize(
    ("method", "url"), [("get", PROFILES), ("put", CONSENT), ("delete", EVENTS), ("post", "/api/v1/profiles/")]
)
def test_wrong_method_is_405(api, existing, method, url):
    before = db_state()

    response = getattr(api("developer"), method)(url)

    assert_problem(response, 405, "method_not_allowed")
    assert db_state() == before


# --- 401 -------------------------------------------------------------------------


def _client(header: str | None) -> APIClient:
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def test_no_token_is_401_with_a_hint(existing):
    before = db_state()

    response = _client(None).post(PROFILES, [{"external_id": "a"}], format="json")

    body = assert_problem(response, 401, "not_authenticated")
    assert "Bearer" in body["hint"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert db_state() == before


def test_unknown_token_is_401(existing):
    before = db_state()

    response = _client("Bearer mk_sandbox_not-a-real-token").post(PROFILES, [{"external_id": "a"}], format="json")

    assert_problem(response, 401, "invalid_token")
    assert db_state() == before


def test_revoked_token_is_401_saying_so(persona, sandbox, existing):
    secret = issue_test_token(persona("developer"), sandbox)
    ApiToken.objects.update(revoked_at=timezone.now() - timedelta(days=1))
    before = db_state()

    response = _client(f"Bearer {secret}").post(CONSENT, [], format="json")

    body = assert_problem(response, 401, "token_revoked")
    assert "new token" in body["hint"]
    assert db_state() == before


# --- 403 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "action"), [(PROFILES, "profile.ingest"), (EVENTS, "profile_event.ingest"), (CONSENT, "consent.sync")]
)
@pytest.mark.parametrize("who", ["analyst", "operator", "approver", "compliance"])
def test_roles_without_ingest_get_403_naming_who_may_and_an_audited_denial(api, existing, url, action, who):
    client = api(who)
    before = db_state()

    response = client.post(url, [], format="json")

    body = assert_problem(response, 403, "permission_denied")
    assert "developer" in body["hint"] and "admin" in body["hint"]
    denial = AuditEvent.objects.get(action=action)
    assert denial.outcome == Outcome.DENIED
    assert denial.actor_user == client.user
    assert denial.request_id == body["request_id"]
    after = db_state()
    assert after.pop("audit") == before.pop("audit") + 1
    assert after == before


def test_permission_is_refused_before_the_body_is_read(api, existing):
    response = api("analyst").post(PROFILES, data="{not json", content_type="application/json")

    assert_problem(response, 403, "permission_denied")


@pytest.mark.parametrize("who", ["developer", "admin"])
def test_developers_and_admins_may_ingest(api, who):
    response = api(who).post(PROFILES, [{"external_id": "a"}], format="json")

    assert response.status_code == 200


# --- another environment ---------------------------------------------------------


def test_a_token_of_another_environment_cannot_reach_this_environments_profiles(api, existing, pilot):
    client = api("developer", pilot)
    before = db_state()

    detail = client.get(f"/api/v1/profiles/{existing.pk}")
    history = client.get(f"/api/v1/profiles/{existing.pk}/consent-history")
    consent = client.post(
        CONSENT,
        [
            {
                "external_id": "known",
                "channel": "email",
                "status": "denied",
                "source": "t",
                "captured_at": "2026-01-01T00:00:00Z",
            }
        ],
        format="json",
    )

    assert_problem(detail, 404, "profile_not_found")
    assert_problem(history, 404, "profile_not_found")
    body = assert_problem(consent, 422, "invalid_rows")
    assert body["errors"][0]["code"] == "profile_not_found"
    assert db_state() == before


# --- 500 -------------------------------------------------------------------------


def test_an_unexpected_error_is_a_500_problem_without_a_trace(api, existing, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(selectors, "profile_list", explode)

    response = api("developer").get("/api/v1/profiles/")

    body = assert_problem(response, 500, "server_error")
    text = response.content.decode()
    assert "hunter2" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert body["request_id"].startswith("req_")
