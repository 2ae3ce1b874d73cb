"""Structured logs: one JSON object per line (python-json-logger), each carrying the
request id, actor, environment and door of what is being done — a web request, a Celery
task (worker) or a periodic tick (beat) — and never a secret.

The context lives in a context variable: `RequestIdMiddleware` opens it for a request
(door from the path), the actor's builders fill in who and where (`bind`), and the Celery
signals connected in marketerapi/celery.py open it for each task (door `task`). The
formatter masks anything shaped like an API token, a bearer credential or a password
field, in the message and in a traceback alike: a secret that reaches a log line by
accident (an exception quoting a request) is still not written.
"""

from __future__ import annotations

import contextvars
import logging
import re
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("log_context", default=None)
FIELDS = ("request_id", "actor", "environment", "door")

# mk_<environment>_<secret>, "Bearer <anything>", password=…/"password": "…", secret=…, token=…
_SECRETS = [
    (re.compile(r"\bmk_[a-z0-9-]+_[A-Za-z0-9_\-]{8,}"), "mk_[redacted]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), r"\1 [redacted]"),
    (
        re.compile(
            r"""(?i)(["']?\b(?:password|passwd|secret|token|api_key|apikey|credentials?)["']?\s*[:=]\s*)(["']?)[^\s"',&}]+"""
        ),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(?i)(\bwhsec_)[A-Za-z0-9]+"), r"\1[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def open_context(**values: str) -> contextvars.Token:
    """Start the context of one request or task; returns the token to `close_context` with."""
    return _context.set({name: str(values.get(name) or "-") for name in FIELDS})


def close_context(token: contextvars.Token) -> None:
    _context.reset(token)


def bind(**values: Any) -> None:
    """Add to the current context (the actor once known): actor, environment, door."""
    current = _context.get()
    if current is not None:
        current.update({name: str(value) for name, value in values.items() if value is not None})


def current() -> dict[str, str]:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Puts request_id, actor, environment and door on every record (a dash when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from marketerapi.middleware import current_request_id

        context = _context.get() or _from_request(getattr(record, "request", None))
        record.request_id = context.get("request_id") or current_request_id()
        for name in ("actor", "environment", "door"):
            setattr(record, name, context.get(name, "-"))
        return True


def _from_request(request: Any) -> dict[str, str]:
    """Django logs a response's 4xx and 5xx (django.request) after the middleware finished:
    read the context from the request it passes along."""
    if request is None:
        return {}
    from marketerapi.middleware import door_of

    actor = getattr(request, "marketerapi_actor", None)
    environment = getattr(getattr(actor, "environment", None), "slug", "-")
    return {
        "request_id": getattr(request, "request_id", "-"),
        "actor": actor.label if actor is not None else "-",
        "environment": environment,
        "door": door_of(getattr(request, "path", "")),
    }


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter, with the message and traceback passed through `redact`."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key, value in list(log_data.items()):
            if value is None or isinstance(value, bool | int | float):
                continue
            # Objects (django.request's `request`) are written as text: masked like the message.
            log_data[key] = redact(value if isinstance(value, str) else str(value))
        return log_data


class RedactingFormatter(logging.Formatter):
    """The plain-text format (LOG_FORMAT=plain, for a developer's terminal), redacted alike."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
