"""Web security of every door (issue 12, "Web security"): the Content-Security-Policy and no
inline script anywhere it would forbid one, CSRF on the portal, password validation,
secrets kept out of error pages and logs, and signatures that cannot be altered or replayed.
Production settings (secure cookies, HSTS, frame denial, `check --deploy`) are checked in a
process of their own in tests/test_deploy.py."""

from __future__ import annotations

import logging
import re
import secrets
import time
from html.parser import HTMLParser

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

from tests.factories import AudienceFactory
from tests.portal.conftest import portal  # noqa: F401  (fixture)


class _Scripts(HTMLParser):
    """Inline scripts, inline event handlers and javascript: URLs in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and not named.get("src") and named.get("type") != "application/json":
            self._in_inline_script = True
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value}>")

    def handle_endtag(self, tag: str) -> None:
        self._in_inline_script = False if tag == "script" else self._in_inline_script

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.found.append(f"<script>{data.strip()[:60]}…")


def inline_scripts(html: str) -> list[str]:
    parser = _Scripts()
    parser.feed(html)
    return parser.found


def _directives(header: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_every_response_carries_a_content_security_policy_that_forbids_inline_scripts(client):
    for url in ("/login/", "/api/v1/me", "/healthz", "/admin/login/"):
        response = client.get(url)
        policy = _directives(response["Content-Security-Policy"])

        assert policy["script-src"] == ["'self'"], url
        assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"], url
        assert "'unsafe-eval'" not in response["Content-Security-Policy"], url


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/audiences/",
        "/audiences/new/",
        "/audiences/{audience}/",
        "/audiences/{audience}/edit/",
        "/audiences/{audience}/versions/",
        "/approvals/",
        "/audit/",
        "/audiences/999999/",
    ],
)
def test_portal_pages_have_no_inline_script_the_policy_would_block(portal, url):  # noqa: F811
    client = portal("admin")
    audience = AudienceFactory(published=True)

    response = client.get(url.format(audience=audience.pk))

    assert response.status_code in (200, 404), url
    assert inline_scripts(response.content.decode()) == []


@pytest.mark.parametrize("url", ["/login/", "/admin/login/", "/api/docs/", "/api/docs/?script="])
def test_sign_in_pages_and_the_api_docs_have_no_inline_script(client, url):
    response = client.get(url)

    assert response.status_code == 200
    if url.endswith("?script="):
        assert response["Content-Type"].startswith("application/javascript")
    else:
        assert inline_scripts(response.content.decode()) == []


def test_the_admin_site_has_no_inline_script(client, persona):
    admin = persona("admin")
    admin.is_staff = True
    admin.save()
    client.force_login(admin)
    for url in ("/admin/", "/admin/audiences/audience/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert inline_scripts(response.content.decode()) == [], url


def test_a_portal_post_without_the_csrf_token_is_refused(persona, sandbox):
    client = Client(enforce_csrf_checks=True)
    client.force_login(persona("operator"))

    response = client.post("/environment/", {"environment": "sandbox"})

    assert response.status_code == 403
    assert "Traceback" not in response.content.decode()


@pytest.mark.parametrize("password", ["short1!", "password123", "12345678901234", "demo-analyst-2026"])
def test_weak_passwords_are_refused(persona, password):
    user = persona("analyst")
    user.username = "demo-analyst-2026"

    with pytest.raises(ValidationError):
        validate_password(password, user=user)


def test_a_strong_password_is_accepted(persona):
    validate_password("correct horse battery staple 42", user=persona("analyst"))


SECRET_PASSWORD = "s3cr3t-db-password-never-shown"


@pytest.fixture
def failing_view(monkeypatch):
    """GET /api/v1/me raises an unexpected error (a bug), after authentication."""

    def boom(*args, **kwargs):
        raise RuntimeError("an unexpected bug")

    monkeypatch.setattr("governance.api.me.MeView.get", boom)


def test_secrets_are_not_in_the_500_problem_nor_in_the_logs(api, failing_view, settings, caplog):
    settings.DATABASE_URL = f"postgres://app:{SECRET_PASSWORD}@db:5432/marketerapi"
    client = api("developer")
    secret = client._credentials["HTTP_AUTHORIZATION"].split()[1]
    client.raise_request_exception = False

    with caplog.at_level(logging.INFO):
        response = client.get("/api/v1/me", HTTP_COOKIE=f"sessionid={secret}")

    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for text in (response.content.decode(), logged):
        assert secret not in text and SECRET_PASSWORD not in text


def test_the_debug_error_page_hides_tokens_and_passwords_in_service_urls(portal, settings, monkeypatch):  # noqa: F811
    """Even with DEBUG on (development), the technical 500 page shows no credential: not the
    caller's token, not a password inside DATABASE_URL, REDIS_URL or the broker URL."""
    settings.DEBUG = True
    settings.DATABASE_URL = f"postgres://app:{SECRET_PASSWORD}@db:5432/marketerapi"
    settings.CELERY_BROKER_URL = f"redis://:{SECRET_PASSWORD}@redis:6379/1"
    client = portal("operator")
    client.raise_request_exception = False

    def boom(*args, **kwargs):
        raise RuntimeError("an unexpected bug")

    monkeypatch.setattr("portal.views.portal_actor", boom)

    token = "mk_sandbox_" + secrets.token_hex(16)
    response = client.get("/", HTTP_AUTHORIZATION=f"Bearer {token}")

    page = response.content.decode()
    assert response.status_code == 500
    assert "DATABASE_URL" in page  # the technical page, with its settings
    assert token not in page
    assert SECRET_PASSWORD not in page
    assert re.search(r"postgres://app:\*+@db:5432/marketerapi", page)


def test_a_webhook_signature_cannot_be_altered_or_replayed():
    from integrations.webhooks.signing import signature_header, verify_signature

    now = int(time.time())
    body = b'{"type":"audience.published","id":1}'
    header = signature_header("whsec_test", now, body)

    assert verify_signature(header, body, "whsec_test", now=now)
    assert not verify_signature(header, body.replace(b"1", b"2"), "whsec_test", now=now), "altered body"
    assert not verify_signature(header.replace(f"t={now}", f"t={now + 1}"), body, "whsec_test", now=now), (
        "altered timestamp"
    )
    assert not verify_signature(header, body, "whsec_other", now=now), "another secret"
    assert not verify_signature(header, body, "whsec_test", now=now + 301), "replayed after the tolerance"


def test_an_api_call_with_a_session_and_no_csrf_token_is_a_problem_not_an_html_page(persona, sandbox):
    """Found by the fuzzer: DELETE /api/v1/audiences/null,null/ with a session cookie met
    Django's CSRF check before the API's not-found answer, and got its HTML page."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(persona("operator"))

    response = client.delete("/api/v1/audiences/null,null/")

    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "csrf_failed" and "X-CSRFToken" in body["hint"]


def test_the_token_list_is_documented_as_the_object_it_returns(db):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    ok = schema["paths"]["/api/v1/tokens/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    resolved = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[-1]] if "$ref" in ok else ok

    assert resolved["type"] == "object" and "results" in resolved["properties"]
