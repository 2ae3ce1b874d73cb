"""The OpenAPI schema of the profiles, ingestion and events endpoints: generated without
warnings, each operation documented with its permission, examples and failure modes."""

from __future__ import annotations

from django.urls import re_path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from audiences.api import profiles as audiences_api
from integrations.api import events as integrations_api

# Only the views of this feature, so other apps' routes neither hide nor add warnings.
PATTERNS = [
    re_path(r"^api/v1/profiles/?$", audiences_api.ProfileList.as_view()),
    re_path(r"^api/v1/profiles/bulk/?$", audiences_api.ProfileBulkUpsert.as_view()),
    re_path(r"^api/v1/profiles/(?P<profile_id>[0-9]+)/?$", audiences_api.ProfileDetail.as_view()),
    re_path(r"^api/v1/profiles/(?P<profile_id>[0-9]+)/consent-history/?$", audiences_api.ConsentHistory.as_view()),
    re_path(r"^api/v1/profile-events/bulk/?$", audiences_api.ProfileEventBulkIngest.as_view()),
    re_path(r"^api/v1/consent/sync/?$", audiences_api.ConsentSync.as_view()),
    re_path(r"^api/v1/events/?$", integrations_api.DomainEventList.as_view()),
]


def test_schema_of_the_ingestion_endpoints_has_no_warnings(db):
    GENERATOR_STATS.reset()

    schema = SchemaGenerator(patterns=PATTERNS).get_schema(request=None, public=True)

    assert not GENERATOR_STATS._warn_cache, list(GENERATOR_STATS._warn_cache)
    assert not GENERATOR_STATS._error_cache, list(GENERATOR_STATS._error_cache)
    operations = {op["operationId"]: op for item in schema["paths"].values() for op in item.values()}
    assert set(operations) == {
        "profiles_list",
        "profiles_retrieve",
        "profiles_bulk_upsert",
        "profiles_consent_history",
        "profile_events_bulk_ingest",
        "consent_sync",
        "events_list",
    }
    for name, op in operations.items():
        assert op["summary"], name
        assert "**Permission:**" in op["description"], name
        assert {"401", "403"} <= set(op["responses"]), name
    for name in ("profiles_bulk_upsert", "profile_events_bulk_ingest", "consent_sync"):
        op = operations[name]
        assert {"400", "413", "415", "422"} <= set(op["responses"]), name
        assert "all-or-nothing" in op["description"], name
        assert op["requestBody"]["content"]["application/json"]["examples"], name
