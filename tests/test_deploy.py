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
