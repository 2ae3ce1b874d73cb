"""How PII looks masked (audiences/profiles/pii.py)."""

from __future__ import annotations

import pytest

from audiences.profiles.pii import mask_email, mask_name, mask_phone, mask_pii, mask_token


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("jane@example.test", "j***@e***.test"),
        ("a.b@mail.example.co.uk", "a***@m***.uk"),
        ("x@localhost", "x***@l***"),
        ("broken", "b***"),
        ("", ""),
        (None, None),
    ],
)
def test_mask_email(value, masked):
    assert mask_email(value) == masked


@pytest.mark.parametrize(("value", "masked"), [("+44 7700 900123", "***23"), ("5", "***5"), ("", ""), (None, None)])
def test_mask_phone_keeps_the_last_two_digits(value, masked):
    assert mask_phone(value) == masked


@pytest.mark.parametrize(("value", "masked"), [("a" * 60 + "9f3c", "***9f3c"), ("", ""), (None, None)])
def test_mask_token_keeps_the_last_four_characters(value, masked):
    assert mask_token(value) == masked


def test_mask_name_keeps_the_first_letter():
    assert mask_name("Ann") == "A***"
    assert mask_name(None) is None


def test_mask_pii_masks_only_pii_fields():
    data = {"external_id": "c-1", "email": "jane@example.test", "first_name": "Jane", "region": "EU"}

    assert mask_pii(data) == {"external_id": "c-1", "email": "j***@e***.test", "first_name": "J***", "region": "EU"}
