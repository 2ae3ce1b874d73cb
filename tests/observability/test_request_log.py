"""The request log: one row per API request and portal page, written in batches off the
request's thread, read back by the person it belongs to, pruned after its retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.models import RequestLog
from governance.requestlog import buffer
from governance.requestlog.services import request_log_prune
from governance.tasks import request_log_prune_task
from tests.factories import ApiTokenFactory

pytestmark = pytest.mark.django_db


def test_an_api_request_is_queued_not_written_then_flushed_in_one_insert(api):
    client = api("developer")

    with CaptureQueriesContext(connection) as during:
        response = client.get("/api/v1/me")

    assert response.status_code == 200
    assert not any("requestlog" in q["sql"].lower() for q in during.captured_queries)
    assert RequestLog.objects.count() == 0 and buffer.pending() == 1
    with CaptureQueriesContext(connection) as writing:
        assert buffer.flush() == 1
    assert sum("requestlog" in q["sql"].lower() for q in writing.captured_queries) == 1
    row = RequestLog.objects.get()
    assert (row.door, row.method, row.route, row.status, row.code) == ("api", "GET", "me", 200, "")
    assert row.user_id == client.user.pk and row.username == "p-developer"
    assert row.token_id is not None and row.environment_id is not None
    assert row.request_id == response["X-Request-ID"] and row.latency_ms > 0
    assert row.rate_class == "read"


def test_a_refusal_records_its_problem_code(api):
    client = api("analyst")

    response = client.post("/api/v1/tokens", {"name": "x"}, format="json")
    buffer.flush()

    assert response.status_code == 403
    row = RequestLog.objects.get()
    assert (row.status, row.code, row.route) == (403, "permission_denied", "token-list")


def test_an_unauthenticated_request_has_no_user(client):
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION="Bearer mk_sandbox_nope")
    buffer.flush()

    row = RequestLog.objects.get()
    assert response.status_code == 401
    assert row.user_id is None and row.token_id is None and row.code == "invalid_token"


def test_portal_pages_and_admin_pages_are_logged_with_their_door(portal, persona):
    browser = portal("operator")
    browser.get("/audiences/")
    browser.get("/requests/")
    admin = portal("admin")
    admin.user.is_staff = True
    admin.user.save()
    admin.get("/admin/")
    buffer.flush()

    doors = list(RequestLog.objects.order_by("id").values_list("door", "route", "status"))
    assert doors[:2] == [("portal", "portal-audiences:list", 200), ("portal", "portal-requests:history", 200)]
    assert doors[2][0] == "admin"


def test_healthz_and_static_are_not_logged(client):
    client.get("/healthz")
    client.get("/favicon.ico")

    assert buffer.pending() == 0


def test_the_buffer_writes_inline_when_a_batch_fills_without_a_writer(api, settings):
    settings.REQUEST_LOG_BATCH = 3
    client = api("developer")

    for _ in range(3):
        client.get("/api/v1/me")

    assert RequestLog.objects.count() == 3 and buffer.pending() == 0


def test_a_batch_the_database_refuses_is_dropped_not_raised(monkeypatch):
    buffer.add({"no_such_column": 1})

    assert buffer.flush() == 0
    assert buffer.pending() == 0


def test_the_writer_thread_writes_what_gathered(settings, django_db_serialized_rollback, transactional_db, api):
    settings.REQUEST_LOG_BACKGROUND = True
    settings.REQUEST_LOG_FLUSH_SECONDS = 0.1
    client = api("developer")
    buffer.discard()  # rows earlier tests left in this process's buffer are not this test's
    client.get("/api/v1/me")

    import time

    try:
        deadline = time.monotonic() + 5
        while not RequestLog.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert RequestLog.objects.count() == 1
        assert buffer.pending() == 0
    finally:
        buffer.stop_writer()


def test_me_requests_lists_only_my_own_rows_in_my_environment(api, pilot):
    mine = api("operator")
    other = api("analyst")
    mine.get("/api/v1/me")
    other.get("/api/v1/me")
    buffer.flush()
    RequestLog.objects.create(
        user_id=mine.user.pk, environment_id=pilot.pk, door="api", method="GET", route="me", status=200, latency_ms=1
    )

    response = mine.get("/api/v1/me/requests")

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["route"] for r in rows] == ["me"]
    assert set(rows[0]) >= {"occurred_at", "door", "method", "route", "status", "code", "latency_ms", "request_id"}


def test_me_requests_is_paginated_with_bounded_queries(api, django_assert_max_num_queries):
    client = api("operator")
    token = client.user.api_tokens.get()
    RequestLog.objects.bulk_create(
        RequestLog(
            user_id=client.user.pk,
            environment_id=token.environment_id,
            door="api",
            method="GET",
            route="me",
            status=200,
            latency_ms=1,
        )
        for _ in range(30)
    )

    with django_assert_max_num_queries(12):
        page = client.get("/api/v1/me/requests?limit=10").json()

    assert len(page["results"]) == 10 and page["next"]
    assert client.get("/api/v1/me/requests?limit=0").json()["code"] == "invalid_limit"
    assert client.get("/api/v1/me/requests?cursor=bogus").json()["code"] == "invalid_cursor"


def test_me_requests_needs_a_signed_in_caller(client):
    assert client.get("/api/v1/me/requests").status_code == 401


def test_the_portal_page_shows_my_requests_and_is_linked_from_the_user_menu(portal):
    browser = portal("operator")
    browser.get("/api/v1/me/quotas")
    buffer.flush()

    page = browser.get("/requests/").content.decode()

    assert 'id="request-history-link"' in page
    assert "me-quotas" in page


def test_the_portal_page_refuses_anonymous_visitors(client):
    response = client.get("/requests/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_pruning_deletes_only_rows_past_retention(settings):
    settings.REQUEST_LOG_RETENTION_DAYS = 90
    now = timezone.now()
    for days in (1, 89, 91, 200):
        RequestLog.objects.create(
            occurred_at=now - timedelta(days=days), door="api", method="GET", status=200, latency_ms=1
        )

    assert request_log_prune(now=now) == 2
    assert sorted((now - r).days for r in RequestLog.objects.values_list("occurred_at", flat=True)) == [1, 89]
    assert request_log_prune_task() == 0


def test_pruning_is_on_beat_schedule(settings):
    assert settings.CELERY_BEAT_SCHEDULE["governance.request_log_prune"]["task"] == "governance.request_log_prune"


def test_a_token_request_names_its_token(api, sandbox, persona):
    user = persona("developer")
    token = ApiTokenFactory(user=user, environment=sandbox, scopes=["read"])
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.secret}")
    client.get("/api/v1/me")
    buffer.flush()

    assert RequestLog.objects.get().token_id == token.pk
