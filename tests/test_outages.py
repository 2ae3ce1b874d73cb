"""Outages: with Redis or PostgreSQL not answering, every door answers in words — the API a
503 problem with Retry-After and a hint, the portal a friendly page — never a raw 500, and
GET /api/v1/status reports the outage it is for (docs/operations.md)."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from django.test import Client

from marketerapi.problems import is_database_outage
from tests.governance.test_service_outage import redis_down  # noqa: F401  (fixture)
from tests.portal.conftest import portal  # noqa: F401  (fixture)


@pytest.mark.parametrize("url", ["/", "/audiences/"])
def test_portal_pages_while_redis_is_down_are_a_friendly_503_not_a_500(portal, redis_down, url):  # noqa: F811
    client = portal("operator")
    redis_down()

    response = client.get(url)

    assert response.status_code == 503, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    assert int(response["Retry-After"]) > 0
    page = response.content.decode()
    assert "A service is not answering" in page and "Try again in a minute" in page
    assert "Traceback" not in page and "127.0.0.1" not in page


def test_status_while_redis_is_down_answers_200_and_reports_the_cache_down(api, redis_down):  # noqa: F811
    client = api("analyst")
    redis_down()

    response = client.get("/api/v1/status")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] in {"degraded", "down"}
    assert body["cache"]["status"] == "down" and body["cache"]["hint"]


def _refused() -> OperationalError:
    """What Django raises when PostgreSQL refuses the connection (psycopg: no SQLSTATE)."""
    import psycopg

    error = OperationalError("connection failed: Connection refused")
    error.__cause__ = psycopg.OperationalError("connection failed: Connection refused")
    return error


@pytest.fixture
def database_down(monkeypatch):
    """Every view fails as it would with PostgreSQL refusing connections; the classifier is
    told the vendor is PostgreSQL (the suite runs on SQLite by default)."""

    def take_away(target: str) -> None:
        def refuse(*args, **kwargs):
            raise _refused()

        monkeypatch.setattr(target, refuse)

    monkeypatch.setattr("django.db.connection.vendor", "postgresql")
    return take_away


def test_an_api_call_while_the_database_is_down_is_a_503_problem_with_a_hint(api, database_down):
    client = api("analyst")
    database_down("audiences.api.definitions.AudienceListCreate.get_queryset")

    response = client.get("/api/v1/audiences/")

    assert response.status_code == 503, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["code"] == "service_unavailable" and "Try again" in body["hint"] and body["request_id"]


def test_a_portal_page_while_the_database_is_down_is_the_friendly_503(portal, database_down):  # noqa: F811
    client = portal("operator")
    database_down("portal.views.portal_actor")

    response = client.get("/")

    assert response.status_code == 503
    assert "A service is not answering" in response.content.decode()


def test_a_database_outage_in_a_middleware_reaches_handler500_and_is_a_503(db, monkeypatch, database_down):
    """The session is read by a middleware, before any view: only handler500 sees that."""
    database_down("django.contrib.sessions.backends.db.SessionStore.load")
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "x" * 32

    page = client.get("/audiences/")
    api_call = client.get("/api/v1/audiences/")

    assert page.status_code == 503 and "A service is not answering" in page.content.decode()
    assert api_call.status_code == 503 and api_call.json()["code"] == "service_unavailable"


@pytest.mark.parametrize(
    ("sqlstate", "outage"),
    [(None, True), ("08006", True), ("57P01", True), ("57P03", True), ("57014", False), ("40001", False)],
)
def test_only_a_missing_database_counts_as_an_outage_not_a_query_failure(monkeypatch, sqlstate, outage):
    import psycopg

    monkeypatch.setattr("django.db.connection.vendor", "postgresql")
    cause = psycopg.OperationalError("x")
    monkeypatch.setattr(type(cause), "sqlstate", property(lambda self: sqlstate))
    error = OperationalError("x")
    error.__cause__ = cause

    assert is_database_outage(error) is outage
