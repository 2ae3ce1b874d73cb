import pytest


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Request-ID"].startswith("req_")


def test_request_id_is_echoed(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"


def test_the_api_docs_load_swagger_ui_from_this_server_not_a_cdn(client):
    page = client.get("/api/docs/").content.decode()

    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    # collectstatic (and `make run`'s static serving) finds the file in the pinned package.
    from django.contrib.staticfiles import finders

    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/v1/no-such-thing/", "/api/v2/profiles", "/api/nothing"])
def test_an_unknown_api_path_is_a_problem_even_with_debug_on(client, settings, debug, path):
    settings.DEBUG = debug

    response = client.post(path, data={}, content_type="application/json")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["status"]) == ("not_found", 404)
    assert path in body["detail"] and "/api/docs/" in body["hint"] and body["request_id"]


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml" and b"<svg" in response.content


def test_every_error_response_is_documented_as_problem_json(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    documented = [
        (path, method, status, sorted(response.get("content", {})))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for status, response in operation.get("responses", {}).items()
        if status[0] in "45"
    ]
    assert documented
    assert [d for d in documented if d[3] and d[3] != ["application/problem+json"]] == []


def test_the_schema_says_what_the_flags_list_and_versions_answer(client, db):
    """Schema drift found by fuzzing (issue 12): GET /flags/ answers {"results": [...]}, and a
    version's rebuilt_from is null unless it is a rollback."""
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]

    flags = schema["paths"]["/api/v1/flags/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    listed = components[flags["$ref"].rsplit("/", 1)[1]]
    assert listed["type"] == "object" and listed["properties"]["results"]["type"] == "array"
    version = components["Version"]["properties"]["rebuilt_from"]
    assert version.get("nullable") is True or "null" in str(version.get("type"))
