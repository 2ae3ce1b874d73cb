"""The OpenAPI schema of the audience and suppression endpoints: generated without warnings,
every operation with a summary, its permission, examples and its failure modes."""

from __future__ import annotations

from django.urls import re_path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from audiences.api import definitions as audience_api
from audiences.api import suppressions as suppression_api

ID = r"(?P<audience_id>[0-9]+)"
PATTERNS = [
    re_path(r"^api/v1/audiences/?$", audience_api.AudienceListCreate.as_view()),
    re_path(r"^api/v1/audiences/preview/?$", audience_api.AudienceRulesPreview.as_view()),
    re_path(rf"^api/v1/audiences/{ID}/?$", audience_api.AudienceDetail.as_view()),
    re_path(rf"^api/v1/audiences/{ID}/preview/?$", audience_api.AudiencePreview.as_view()),
    re_path(rf"^api/v1/audiences/{ID}/validate/?$", audience_api.AudienceValidate.as_view()),
    re_path(rf"^api/v1/audiences/{ID}/share/?$", audience_api.AudienceShare.as_view()),
    re_path(rf"^api/v1/audiences/{ID}/promote/?$", audience_api.AudiencePromote.as_view()),
    re_path(r"^api/v1/suppressions/?$", suppression_api.SuppressionLists.as_view()),
]


def test_schema_of_the_audience_endpoints(db):
    GENERATOR_STATS.reset()

    schema = SchemaGenerator(patterns=PATTERNS).get_schema(request=None, public=True)

    assert not GENERATOR_STATS._warn_cache, list(GENERATOR_STATS._warn_cache)
    assert not GENERATOR_STATS._error_cache, list(GENERATOR_STATS._error_cache)
    operations = {op["operationId"]: op for item in schema["paths"].values() for op in item.values()}
    assert set(operations) == {
        "audiences_list",
        "audiences_create",
        "audiences_retrieve",
        "audiences_update",
        "audiences_destroy",
        "audiences_preview_rules",
        "audiences_preview",
        "audiences_validate",
        "audiences_share",
        "audiences_unshare",
        "audiences_promote",
        "suppressions_list",
        "suppressions_change",
    }
    for name, op in operations.items():
        assert op["summary"], name
        assert "**Permission:**" in op["description"], name
        assert {"401", "403"} <= set(op["responses"]), name
        examples = [
            content.get("examples")
            for response in op["responses"].values()
            for content in response.get("content", {}).values()
        ]
        assert any(examples), f"{name} has no example"
    for name in ("audiences_create", "audiences_update", "audiences_preview_rules"):
        assert "422" in operations[name]["responses"], name
        assert operations[name]["requestBody"]["content"]["application/json"]["examples"], name
    assert "409" in operations["audiences_promote"]["responses"]
    assert "202" in operations["audiences_destroy"]["responses"]
    assert "202" in operations["suppressions_change"]["responses"]
    promote_params = {p["name"] for p in operations["audiences_promote"].get("parameters", [])}
    assert "Idempotency-Key" in promote_params
