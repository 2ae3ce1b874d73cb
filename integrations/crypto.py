"""One cipher for the secrets integrations keeps: `cipher(purpose)`.

Fernet (AES-128-CBC with an HMAC, from `cryptography`) under a key derived from
SECRET_KEY with HKDF-SHA256, the purpose's label as HKDF `info`: each purpose gets a key
of its own, so a destination's credentials cannot be decrypted as a webhook secret or
the other way round. Every key in SECRET_KEY_FALLBACKS still decrypts (MultiFernet), so
SECRET_KEY can be rotated: move the old key to SECRET_KEY_FALLBACKS, then re-save what
was encrypted under it.

The purposes, and the labels that keep today's ciphertexts readable:

- DESTINATION_CREDENTIALS: a destination's stored credentials (destinations/credentials.py);
- WEBHOOK_SECRET: a webhook subscription's signing secret (webhooks/signing.py).
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

__all__ = ["DESTINATION_CREDENTIALS", "PURPOSES", "WEBHOOK_SECRET", "InvalidToken", "cipher"]

# The HKDF info labels. Never change one: what was encrypted under it would no longer decrypt.
DESTINATION_CREDENTIALS = "marketerapi.destinations.credentials"
WEBHOOK_SECRET = "marketerapi.webhooks.secret"  # noqa: S105  (a label, not a secret)
PURPOSES = frozenset({DESTINATION_CREDENTIALS, WEBHOOK_SECRET})


def _key(secret_key: str, purpose: str) -> bytes:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return base64.urlsafe_b64encode(kdf.derive(secret_key.encode()))


@lru_cache(maxsize=8)
def _cipher(purpose: str, secret_key: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_key(key, purpose)) for key in (secret_key, *fallbacks)])


def cipher(purpose: str) -> MultiFernet:
    """The Fernet of `purpose` under SECRET_KEY, decrypting under SECRET_KEY_FALLBACKS too.

    `encrypt()` uses SECRET_KEY; `decrypt()` raises `InvalidToken` when neither key fits.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"{purpose!r} is not a purpose of integrations.crypto; use one of {sorted(PURPOSES)}")
    return _cipher(purpose, settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))
