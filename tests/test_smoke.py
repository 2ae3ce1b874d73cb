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
