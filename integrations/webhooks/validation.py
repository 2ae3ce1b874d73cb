"""The checks of a webhook subscription's input, shared by its services (and so by the API
and the admin): the URL, the event types and a chosen secret.

Each refusal is an InvalidInput (422) whose `errors` entry points at the field, with one
of these codes: `invalid_url`, `url_has_credentials`, `url_not_allowed`, `url_not_resolvable`,
`https_required`, `no_event_types`, `unknown_event_type` (with `allowed_event_types`), `weak_secret`; the
services add `conflicting_fields` and `invalid_state`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator

from governance.models import Environment
from governance.outbox import EVENT_TYPES
from integrations import egress
from marketerapi.problems import InvalidInput

MIN_SECRET_LENGTH = 24
MAX_SECRET_LENGTH = 200


def invalid(pointer: str, code: str, message: str, hint: str, **extra: Any) -> InvalidInput:
    """A 422 about one field."""
    return InvalidInput(
        message,
        code=code,
        hint=hint,
        errors=[{"pointer": pointer, "code": code, "message": message, "hint": hint}],
        **extra,
    )


def validate_url(url: str, environment: Environment) -> str:
    """An absolute http(s) URL we are willing to POST events to from `environment`.

    - No user:password@ (it would be stored and shown in clear; the signature proves the
      sender).
    - Where it may point is integrations/egress.py's: outside a sandbox https only, and the
      host must resolve to public addresses (or networks the operator allow-listed) — never
      loopback, private, link-local, metadata … addresses; in a sandbox http too, and a
      receiver on this machine. Checked again at every delivery (DNS may change).
    """
    url = (url or "").strip()
    shape_hint = "Send an absolute URL such as https://hooks.example.com/marketerapi."
    if len(url) > 500:
        raise invalid("/url", "invalid_url", "The URL is longer than 500 characters.", "Use a shorter URL.")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except DjangoValidationError:
        raise invalid("/url", "invalid_url", f"{url!r} is not an absolute http(s) URL.", shape_hint) from None
    try:
        egress.check_url(url, egress.webhook_policy(sandbox=environment.is_sandbox))
    except egress.EgressRefused as refused:
        hint = refused.hint
        if refused.code == "url_has_credentials":
            hint = (
                "Remove user:password@ from the URL: check the Marketerapi-Signature header instead (docs/webhooks.md)."
            )
        raise invalid("/url", refused.code, refused.message, hint) from None
    return url


def validate_event_types(event_types: Iterable[str] | None) -> list[str]:
    allowed = sorted(EVENT_TYPES)
    types = list(dict.fromkeys(event_types or []))
    if not types:
        raise invalid(
            "/event_types",
            "no_event_types",
            "A subscription needs at least one event type.",
            f"Choose from: {', '.join(allowed)}.",
            allowed_event_types=allowed,
        )
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        hint = f"Use only these event types: {', '.join(allowed)}."
        raise InvalidInput(
            f"Unknown event type(s): {', '.join(map(repr, unknown))}.",
            code="unknown_event_type",
            hint=hint,
            errors=[
                {
                    "pointer": f"/event_types/{types.index(t)}",
                    "code": "unknown_event_type",
                    "message": f"{t!r} is not an event type.",
                    "hint": hint,
                }
                for t in unknown
            ],
            allowed_event_types=allowed,
        )
    return types


def validate_secret(secret: str) -> str:
    if not (MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH) or not secret.isprintable() or " " in secret:
        raise invalid(
            "/secret",
            "weak_secret",
            f"A signing secret has {MIN_SECRET_LENGTH}–{MAX_SECRET_LENGTH} printable characters without spaces.",
            "Leave `secret` out to have a strong one generated (shown once), or send a longer random one.",
        )
    return secret
