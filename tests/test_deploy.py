"""`manage.py check --deploy` passes with production-like settings and fails usefully without them."""

from __future__ import annotations

import re
import secrets

import pytest

from tests.processes import clean_env, manage

# Each test runs manage.py in a process.
pytestmark = pytest.mark.slow


def production_env(tmp_path, **overrides: str) -> dict[str, str]:
    values = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "marketer.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
    }
    return clean_env(**{**values, **overrides})


def test_check_deploy_passes_with_production_settings(tmp_path):
    result = manage("check", "--deploy", env=production_env(tmp_path))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Not a single deployment warning either (other apps' warnings, e.g. the API schema's,
    # are their own tests' business).
    assert not re.findall(r"security\.[EW]\d+", output), output


def test_without_secret_key_and_debug_off_the_process_refuses_to_start(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"]

    result = manage("check", "--deploy", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY is empty; set it (50+ random characters) or set DEBUG=1 for development." in result.stderr


def test_a_short_secret_key_is_reported_by_the_deploy_check(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path, SECRET_KEY="short"))

    assert result.returncode != 0
    assert "security.W009" in result.stderr


def test_debug_on_is_reported_by_the_deploy_check(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path, DEBUG="1"))

    assert result.returncode != 0
    assert "security.W018" in result.stderr


_PROBE = """
import json
from django.conf import settings
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
page = Client().get("/healthz", secure=True, HTTP_HOST="marketer.example.com")
plain = Client().get("/healthz", HTTP_HOST="marketer.example.com")
print(json.dumps({
    "settings": {name: getattr(settings, name) for name in (
        "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF",
        "DEBUG")},
    "validators": [v["NAME"].rsplit(".", 1)[-1] for v in settings.AUTH_PASSWORD_VALIDATORS],
    "headers": dict(page.headers),
    "status": page.status_code,
    "plain": {"status": plain.status_code, "location": plain.headers.get("Location", "")},
}))
"""


def test_production_settings_send_hsts_frame_denial_csp_and_secure_cookies(tmp_path):
    import json

    result = manage("shell", "-c", _PROBE, env=production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    assert seen["settings"] == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "DEBUG": False,
    }
    assert {"MinimumLengthValidator", "CommonPasswordValidator", "NumericPasswordValidator"} <= set(seen["validators"])
    headers = seen["headers"]
    assert seen["status"] == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self';" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    # Plain http is sent to https first.
    assert seen["plain"] == {"status": 301, "location": "https://marketer.example.com/healthz"}
