"""Destination credentials: stored encrypted, or named as an environment variable; never
shown back.

- Stored: the credentials object (e.g. `{"api_key": "…"}`) is encrypted with
  `integrations.crypto.cipher(DESTINATION_CREDENTIALS)` (Fernet under a key derived from
  SECRET_KEY for this purpose alone). Keys in SECRET_KEY_FALLBACKS still decrypt, so
  SECRET_KEY can be rotated: re-save the destination's credentials to re-encrypt them.
- From the environment: `credentials_env` names a variable whose value is a JSON object,
  or a plain string taken as the adapter's single secret (its `primary_credential`, e.g.
  `api_key`). Only names starting with ENV_PREFIX may be used, so a destination can never
  be pointed at SECRET_KEY, DATABASE_URL or any other of the deployment's own secrets and
  send it to a vendor.
- `redact(text, credentials)` scrubs credential values out of anything that is stored or
  shown (last errors, problem details), in case a vendor echoes one back.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from integrations.crypto import DESTINATION_CREDENTIALS, InvalidToken, cipher

if TYPE_CHECKING:
    from integrations.models import Destination

ENV_PREFIX = "DESTINATION_"
ENV_NAME = re.compile(r"^DESTINATION_[A-Z0-9_]{1,90}$")
REDACTED = "[redacted]"
# Values shorter than this are not scrubbed from text (they would match ordinary words).
MIN_REDACT_LENGTH = 4


class CredentialsUnavailable(RuntimeError):
    """The destination's credentials cannot be read: the variable is unset or not valid,
    or they were encrypted under a SECRET_KEY that is no longer known."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def encrypt_credentials(credentials: dict[str, Any]) -> str:
    return cipher(DESTINATION_CREDENTIALS).encrypt(json.dumps(credentials, sort_keys=True).encode()).decode()


def decrypt_credentials(token: str) -> dict[str, Any]:
    try:
        value = json.loads(cipher(DESTINATION_CREDENTIALS).decrypt(token.encode()).decode())
    except InvalidToken:
        raise CredentialsUnavailable(
            "The stored credentials cannot be decrypted: SECRET_KEY changed and the old key is not in "
            "SECRET_KEY_FALLBACKS.",
            "Send the credentials again (PATCH /api/v1/destinations/{id} with `credentials`).",
        ) from None
    return value if isinstance(value, dict) else {}


def env_name_problem(name: str) -> str | None:
    """Why `name` may not be used as a credentials variable, or None."""
    if not ENV_NAME.match(name or ""):
        return (
            f"Credentials variables must be named {ENV_PREFIX}<NAME> in upper case (letters, digits, _), "
            f"e.g. {ENV_PREFIX}BRAZE_KEY; {name!r} is not."
        )
    return None


def read_env_credentials(name: str, primary: str | None) -> dict[str, Any]:
    """The credentials held in the environment variable `name`."""
    problem = env_name_problem(name)
    if problem:
        raise CredentialsUnavailable(problem, f"Rename the variable to start with {ENV_PREFIX}.")
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        raise CredentialsUnavailable(
            f"The environment variable {name} is not set in this process.",
            f"Set {name} in the web and worker processes' environment (a JSON object, or the single secret), "
            "and restart them.",
        )
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            value = json.loads(raw)
        except ValueError:
            raise CredentialsUnavailable(
                f"The environment variable {name} starts with '{{' but is not valid JSON.",
                f'Set {name} to a JSON object such as {{"api_key": "…"}}.',
            ) from None
        if isinstance(value, dict):
            return value
    if primary is None:
        raise CredentialsUnavailable(
            f"The environment variable {name} must hold a JSON object for this adapter.",
            f'Set {name} to a JSON object, e.g. {{"client_id": "…", "client_secret": "…"}}.',
        )
    return {primary: raw}


def destination_credentials(destination: Destination, primary: str | None = None) -> dict[str, Any]:
    """The credentials of a destination, decrypted or read from its variable ({} when none)."""
    if destination.credentials_env:
        return read_env_credentials(destination.credentials_env, primary)
    if destination.credentials_encrypted:
        return decrypt_credentials(destination.credentials_encrypted)
    return {}


def credentials_label(destination: Destination) -> str:
    """How the API shows credentials: never their values."""
    if destination.credentials_env:
        return "env"
    if destination.credentials_encrypted:
        return "stored"
    return "none"


def _secret_values(credentials: dict[str, Any] | None) -> list[str]:
    values: list[str] = []
    for value in (credentials or {}).values():
        if isinstance(value, dict):
            values.extend(_secret_values(value))
        elif value is not None and len(str(value)) >= MIN_REDACT_LENGTH:
            values.append(str(value))
    # Longest first, so a secret that contains another is scrubbed whole.
    return sorted(set(values), key=len, reverse=True)


def redact(text: str, credentials: dict[str, Any] | None) -> str:
    """`text` with every credential value replaced by [redacted]."""
    for value in _secret_values(credentials):
        text = text.replace(value, REDACTED)
    return text
