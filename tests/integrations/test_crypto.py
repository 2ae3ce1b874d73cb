"""One cipher serves destination credentials and webhook secrets (integrations.crypto):
a key per purpose, SECRET_KEY rotation through SECRET_KEY_FALLBACKS, and what was
encrypted before the two derivations became one still decrypts."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from integrations import crypto
from integrations.destinations.credentials import CredentialsUnavailable, decrypt_credentials, encrypt_credentials
from integrations.webhooks.errors import SecretUnreadable
from integrations.webhooks.signing import decrypt_secret, encrypt_secret


def legacy_fernet(secret_key: str, info: bytes) -> Fernet:
    """The derivation integrations/secrets.py and integrations/webhooks.py each wrote out."""
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(secret_key.encode())))


def test_ciphertexts_from_before_the_one_cipher_still_decrypt(settings):
    credentials = legacy_fernet(settings.SECRET_KEY, b"marketerapi.destinations.credentials").encrypt(
        json.dumps({"api_key": "k-123456"}, sort_keys=True).encode()
    )
    secret = legacy_fernet(settings.SECRET_KEY, b"marketerapi.webhooks.secret").encrypt(b"whsec_old-secret-0123456789")

    assert decrypt_credentials(credentials.decode()) == {"api_key": "k-123456"}
    assert decrypt_secret(secret.decode()) == "whsec_old-secret-0123456789"


def test_each_purpose_has_a_key_of_its_own():
    token = crypto.cipher(crypto.WEBHOOK_SECRET).encrypt(b"whsec_x")

    assert crypto.cipher(crypto.WEBHOOK_SECRET).decrypt(token) == b"whsec_x"
    with pytest.raises(InvalidToken):
        crypto.cipher(crypto.DESTINATION_CREDENTIALS).decrypt(token)
    with pytest.raises(CredentialsUnavailable):
        decrypt_credentials(encrypt_secret("whsec_not-credentials-0123456789"))
    with pytest.raises(SecretUnreadable):
        decrypt_secret(encrypt_credentials({"api_key": "k-123456"}))


def test_an_unknown_purpose_is_refused():
    with pytest.raises(ValueError, match="not a purpose"):
        crypto.cipher("marketerapi.somewhere.else")


def test_a_rotated_secret_key_still_decrypts_through_the_fallbacks(settings):
    # given values encrypted under the old key
    old_key = settings.SECRET_KEY
    credentials, secret = encrypt_credentials({"api_key": "k-123456"}), encrypt_secret("whsec_rotated-0123456789")

    # when the key is rotated, the old one kept as a fallback
    settings.SECRET_KEY = "a-new-secret-key-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = [old_key]

    # then both still decrypt, and new values are encrypted under the new key
    assert decrypt_credentials(credentials) == {"api_key": "k-123456"}
    assert decrypt_secret(secret) == "whsec_rotated-0123456789"
    fresh = encrypt_secret("whsec_fresh-0123456789")
    assert legacy_fernet(settings.SECRET_KEY, b"marketerapi.webhooks.secret").decrypt(fresh.encode())

    # and without the fallback they do not
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(CredentialsUnavailable):
        decrypt_credentials(credentials)
    with pytest.raises(SecretUnreadable):
        decrypt_secret(secret)
