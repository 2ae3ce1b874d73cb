"""Structured logs: JSON lines with request id, actor, environment and door from every
door (API, portal, admin, task), and never a secret — the test's tokens, passwords and
webhook secrets are grepped for in everything logged."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.conf import settings
from django.test import Client

from marketerapi import logs
from marketerapi.logs import ContextFilter, RedactingJsonFormatter
from tests.conftest import issue_test_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    config = settings.LOGGING["formatters"]["json"]
    handler.setFormatter(RedactingJsonFormatter(config["format"], rename_fields=config["rename_fields"]))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_every_door_logs_json_with_its_context_and_no_secret(captured, sandbox, persona, monkeypatch):
    secrets = []
    # API: a token refused by role, an unknown token, a token issued (its secret in the answer).
    analyst = persona("analyst")
    token = issue_test_token(analyst, sandbox)
    secrets.append(token)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    api.post("/api/v1/tokens", {"name": "x"}, content_type="application/json")
    unknown = "mk_sandbox_" + "Z" * 43
    secrets.append(unknown)
    Client(HTTP_AUTHORIZATION=f"Bearer {unknown}").get(f"/api/v1/me?token={unknown}")
    developer = persona("developer")
    dev_token = issue_test_token(developer, sandbox)
    secrets.append(dev_token)
    issued = Client(HTTP_AUTHORIZATION=f"Bearer {dev_token}").post(
        "/api/v1/tokens", {"name": "logged?"}, content_type="application/json"
    )
    secrets.append(issued.json()["token"])
    hook_secret = "whsec_" + "q" * 32
    secrets.append(hook_secret)
    Client(HTTP_AUTHORIZATION=f"Bearer {dev_token}").post(
        "/api/v1/webhooks",
        {"url": "ftp://nowhere", "event_types": ["audience.published"], "secret": hook_secret},
        content_type="application/json",
    )
    # Portal and admin: a wrong and a right password.
    UserFactory(username="signer", password=PASSWORD, is_staff=True, groups=["admin"])
    secrets.append(PASSWORD)
    Client().post("/login/", {"username": "signer", "password": PASSWORD + "x"})
    browser = Client()
    browser.post("/login/", {"username": "signer", "password": PASSWORD})
    browser.get("/audiences/999999/")
    Client().post("/admin/login/", {"username": "signer", "password": PASSWORD})
    browser.get("/admin/governance/requestlog/adoption/", {"since": "bad"})
    # A task that logs something carelessly.
    from marketerapi.celery import ping

    monkeypatch.setattr(
        ping, "run", lambda value="pong": logging.getLogger("careless").warning("sent with %s", token) or value
    )
    ping.apply(args=["pong"])
    # Anything logged with a secret in it by accident, with a traceback.
    try:
        raise RuntimeError(f"Authorization: Bearer {token} password={PASSWORD}")
    except RuntimeError:
        logging.getLogger("careless").exception("failed")

    text = captured.getvalue()
    lines = _lines(captured)

    for secret in secrets:
        assert secret not in text, f"a secret was logged: {secret[:12]}…"
    assert lines and all({"request_id", "actor", "environment", "door", "message"} <= set(line) for line in lines)
    refused = next(line for line in lines if "Forbidden: /api/v1/tokens" in line["message"])
    assert (refused["door"], refused["actor"], refused["environment"]) == ("api", "p-analyst", "sandbox")
    assert refused["request_id"].startswith("req_")
    assert any(line["door"] == "portal" for line in lines)
    admin = next(line for line in lines if line["door"] == "admin")
    assert (admin["actor"], admin["environment"]) == ("signer", "sandbox")
    task = next(line for line in lines if line["logger"] == "careless" and line["door"] == "task")
    assert "mk_[redacted]" in task["message"]


def test_redact_masks_tokens_bearers_and_password_fields():
    text = logs.redact('Bearer abc.def-123 {"password": "pw1234", "secret": "s"} mk_pilot_AbCdEf0123456789 token=t0k3n')
    assert "abc.def-123" not in text and "pw1234" not in text and "AbCdEf0123456789" not in text
    assert "t0k3n" not in text


def test_the_settings_log_json_by_default():
    assert settings.LOG_FORMAT == "json"
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "json"
    assert settings.CELERY_WORKER_HIJACK_ROOT_LOGGER is False


def test_tracing_is_off_without_otel_variables(monkeypatch):
    from marketerapi import tracing

    for name in [n for n in __import__("os").environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    assert tracing.wanted() is False and tracing.configure() is False


def test_tracing_stays_off_when_the_packages_are_missing(monkeypatch, caplog):
    import builtins

    from marketerapi import tracing

    real_import = builtins.__import__

    def no_opentelemetry(name, *args, **kwargs):
        if name.startswith("opentelemetry"):
            raise ImportError(name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv("OTEL_SERVICE_NAME", "marketerapi")
    monkeypatch.setattr(builtins, "__import__", no_opentelemetry)
    assert tracing.configure() is False
    assert "tracing stays off" in caplog.text
