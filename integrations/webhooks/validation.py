"""The checks of a webhook subscription's input, shared by its services (and so by the API
and the admin): the URL, the event types and a chosen secret.

Each refusal is an InvalidInput (422) whose `errors` entry points at the field, with one
of these codes: `invalid_url`, `url_has_credentials`, `url_not_allowed`, `https_required`,
`no_event_types`, `unknown_event_type` (with `allowed_event_types`), `weak_secret`; the
services add `conflicting_fields` and `invalid_state`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator

from governance.models import Environment
from governance.outbox import EVENT_TYPES
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


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _host_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    ip = _host_ip(host)
    return (ip is not None and ip.is_loopback) or host.lower() in _LOOPBACK_NAMES


def validate_url(url: str, environment: Environment) -> str:
    """An absolute http(s) URL we are willing to POST events to from `environment`.

    - https everywhere; plain http only in a sandbox (synthetic data) or to a loopback
      address (a receiver on the same machine), since outside a sandbox events carry
      real customers' data.
    - No user:password@ (it would be stored and shown in clear; the signature proves
      the sender), and no link-local, multicast or unspecified addresses (cloud metadata
      endpoints live at 169.254.169.254).
    """
    url = (url or "").strip()
    shape_hint = "Send an absolute URL such as https://hooks.example.com/marketerapi."
    if len(url) > 500:
        raise invalid("/url", "invalid_url", "The URL is longer than 500 characters.", "Use a shorter URL.")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except DjangoValidationError:
        raise invalid("/url", "invalid_url", f"{url!r} is not an absolute http(s) URL.", shape_hint) from None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.username or parts.password:
        raise invalid(
            "/url",
            "url_has_credentials",
            "The URL carries a user name or password.",
            "Remove user:password@ from the URL: check the Marketerapi-Signature header instead (docs/webhooks.md).",
        )
    ip = _host_ip(host)
    if ip is not None and (ip.is_link_local or ip.is_multicast or ip.is_unspecified):
        raise invalid(
            "/url",
            "url_not_allowed",
            f"Webhooks are not sent to {host} (link-local, multicast or unspecified address).",
            "Use the public or loopback address of your receiver.",
        )
    if parts.scheme == "http" and not environment.is_sandbox and not _is_loopback(host):
        raise invalid(
            "/url",
            "https_required",
            f"Outside a sandbox webhooks are sent over https only; {environment.slug} holds real data.",
            "Use an https:// URL; plain http is accepted in a sandbox, or to 127.0.0.1/localhost for a local receiver.",
        )
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
