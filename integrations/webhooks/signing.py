"""The signing of webhook requests: each subscription's secret, the signature every request
carries, and the check a receiver runs (docs/webhooks.md is the integrator's side).

- The secret is generated when none is sent (`whsec_…`), returned once, and stored
  encrypted with `integrations.crypto.cipher(WEBHOOK_SECRET)` (a key of its own derived
  from SECRET_KEY; keys in SECRET_KEY_FALLBACKS still decrypt, so SECRET_KEY can be rotated).
- Every request carries `Marketerapi-Signature: t=<unix>,v1=<hex>`, the HMAC-SHA256 of
  `"<t>.<body>"` with the secret, and `Marketerapi-Event-Id` (`evt_…`) to deduplicate by.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.utils import timezone

from integrations.crypto import WEBHOOK_SECRET, InvalidToken, cipher
from integrations.webhooks.errors import SecretUnreadable

# --- the delivery contract (docs/webhooks.md has the table) -------------------------

SIGNATURE_HEADER = "Marketerapi-Signature"
EVENT_ID_HEADER = "Marketerapi-Event-Id"
EVENT_TYPE_HEADER = "Marketerapi-Event-Type"
ATTEMPT_HEADER = "Marketerapi-Delivery-Attempt"
SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)


# --- secrets ----------------------------------------------------------------------


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def encrypt_secret(secret: str) -> str:
    return cipher(WEBHOOK_SECRET).encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    """The signing secret; raises SecretUnreadable when SECRET_KEY changed without a fallback."""
    try:
        return cipher(WEBHOOK_SECRET).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable() from None


# --- signing ----------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>.<body>"` with `secret`."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(header: str, body: bytes, secret: str, *, tolerance: int = 300, now: float | None = None) -> bool:
    """The receiver's check (docs/webhooks.md has the same in Python and Node)."""
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = timezone.now().timestamp() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
