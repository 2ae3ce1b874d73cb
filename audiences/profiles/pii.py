"""PII masking: how emails, phones, push tokens and names look to everyone who may not see them.

Used wherever profiles leave the system masked (the profiles API, previews' samples,
masked exports), so that one profile looks the same masked everywhere.
"""

from __future__ import annotations

from typing import Any

PII_FIELDS: tuple[str, ...] = ("email", "phone", "push_token", "first_name", "last_name")
# The profile columns shown to a person who looks at profiles in a list (a preview's
# sample, an audience's members), PII masked unless they may see it. (Not the push token:
# nobody recognises a person by it.)
SHOWN_FIELDS: tuple[str, ...] = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "locale",
    "country",
    "region",
    "lifecycle_stage",
)
STARS = "***"


def mask_email(value: str | None) -> str | None:
    """`jane@example.test` → `j***@e***.test`: the first letters and the top-level domain."""
    if not value:
        return value
    local, at, domain = value.rpartition("@")
    if not at:
        return value[0] + STARS
    host, dot, tld = domain.rpartition(".")
    masked_domain = (host[:1] + STARS + dot + tld) if dot else (domain[:1] + STARS)
    return f"{local[:1]}{STARS}@{masked_domain}"


def mask_phone(value: str | None) -> str | None:
    """`+44 7700 900123` → `***23`: only the last two digits."""
    if not value:
        return value
    digits = [c for c in value if c.isdigit()]
    return STARS + "".join(digits[-2:])


def mask_token(value: str | None) -> str | None:
    """A push token → `***9f3c`: only its last four characters, enough to tell two apart."""
    if not value:
        return value
    return STARS + value[-4:]


def mask_name(value: str | None) -> str | None:
    """`Ann` → `A***`."""
    if not value:
        return value
    return value[:1] + STARS


MASKS = {
    "email": mask_email,
    "phone": mask_phone,
    "push_token": mask_token,
    "first_name": mask_name,
    "last_name": mask_name,
}


def mask_pii(data: dict[str, Any], pii_keys: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """Mask the PII fields of a profile's representation in place, and return it; with
    `pii_keys` (the custom attributes marked as personal data in the catalogue) also those
    keys of its `attributes`, whatever their values, to `***`."""
    for field, mask in MASKS.items():
        if field in data:
            data[field] = mask(data[field])
    attributes = data.get("attributes")
    if pii_keys and isinstance(attributes, dict):
        data["attributes"] = {
            key: (STARS if key in pii_keys and value is not None else value) for key, value in attributes.items()
        }
    return data
