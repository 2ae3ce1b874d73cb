"""Prometheus /metrics: refused to anonymous callers by default; a token or an allowed
network lets the scraper in; our gauges are there."""

from __future__ import annotations

import pytest

from governance.models import RequestLog
from tests.factories import ApprovalRequestFactory, JobFactory

pytestmark = pytest.mark.django_db


def test_metrics_are_refused_to_anonymous_callers_by_default(client):
    response = client.get("/metrics")

    assert response.status_code == 403
    assert response.json()["code"] == "metrics_forbidden" and "METRICS_TOKEN" in response.json()["hint"]


def test_a_signed_in_person_is_no_scraper(api):
    assert api("admin").get("/metrics").status_code == 403


def test_a_wrong_token_is_refused(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 403


def test_the_metrics_token_lets_the_scraper_in_with_our_gauges(client, settings, sandbox, pilot):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    JobFactory(environment=sandbox, kind="audience.publish", state="queued")
    ApprovalRequestFactory(environment=pilot)
    RequestLog.objects.create(
        environment_id=sandbox.pk, door="api", method="POST", route="x", status=429, code="rate_limited",
        rate_class="write", latency_ms=1,
    )  # fmt: skip

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")

    text = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert 'marketerapi_jobs{kind="audience.publish",state="queued"} 1.0' in text
    assert 'marketerapi_approvals_pending{environment="pilot"} 1.0' in text
    assert 'marketerapi_rate_limited_requests{rate_class="write"} 1.0' in text
    assert "marketerapi_outbox_lag_seconds" in text
    assert "django_http_requests_total_by_method_total" in text  # django-prometheus's own


def test_an_allowed_network_may_scrape_without_a_token(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403
