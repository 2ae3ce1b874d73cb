"""Who a suppression entry names, read from what a door sends: an `external_id`, or the
SHA-256 of a lower-cased email address (an address itself is hashed on the way in and
never stored). Every bad row of a batch is reported at once, like the ingestion's."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from audiences.profiles.errors import check_batch_size, raise_row_errors, row_error
from marketerapi.problems import InvalidInput

KINDS = ("external_id", "email_hash")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_HASH = re.compile(r"^[0-9a-f]{64}$")

# One person on a list: (kind, value), kind one of KINDS.
Key = tuple[str, str]


def hash_email(email: str) -> str:
    """SHA-256 of the lower-cased address, as profiles' `email_hash` column computes it."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def parse_entries(rows: Any, *, key: str = "entries") -> list[Key]:
    """Turn `[{"external_id": …} | {"email": …} | {"email_hash": …}]` into keys; every bad
    row is reported at once (pointers `/entries/<index>/<field>`), duplicates collapse."""
    if not isinstance(rows, list):
        raise InvalidInput(
            f"`{key}` must be a list.",
            errors=[
                {
                    "pointer": f"/{key}",
                    "code": "not_a_list",
                    "message": f"`{key}` must be a JSON array.",
                    "hint": f'Send e.g. "{key}": [{{"external_id": "cust-1"}}, {{"email": "ann@example.com"}}].',
                }
            ],
        )
    check_batch_size(rows, key)
    errors: list[dict[str, Any]] = []
    keys: dict[Key, None] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            errors.append(
                row_error(
                    index,
                    key,
                    None,
                    "not_an_object",
                    f"Entry {index} is not an object.",
                    'Send {"external_id": "…"} or {"email": "…"}.',
                )
            )
            continue
        unknown = [name for name in row if name not in ("external_id", "email", "email_hash")]
        for name in unknown:
            errors.append(
                row_error(
                    index,
                    key,
                    str(name),
                    "unknown_field",
                    f"Unknown field {name!r}.",
                    "An entry has one of: external_id, email, email_hash.",
                )
            )
        present = [name for name in ("external_id", "email", "email_hash") if name in row]
        if unknown:
            continue
        if len(present) != 1:
            errors.append(
                row_error(
                    index,
                    key,
                    None,
                    "one_key",
                    "An entry names a person by exactly one of external_id, email or email_hash.",
                    'Send {"external_id": "cust-1"} or {"email": "ann@example.com"}, one per entry.',
                )
            )
            continue
        name = present[0]
        value = row[name]
        if not isinstance(value, str) or not value.strip():
            errors.append(row_error(index, key, name, "blank", f"{name} must be a non-empty string.", "Send text."))
            continue
        value = value.strip()
        if name == "external_id":
            if len(value) > 255:
                errors.append(
                    row_error(
                        index, key, name, "max_length", "external_id is longer than 255 characters.", "Shorten it."
                    )
                )
                continue
            keys[("external_id", value)] = None
        elif name == "email":
            if not _EMAIL.match(value) or len(value) > 254:
                errors.append(
                    row_error(
                        index,
                        key,
                        name,
                        "invalid_email",
                        f"{value!r} is not an email address.",
                        "Send e.g. ann@example.com.",
                    )
                )
                continue
            keys[("email_hash", hash_email(value))] = None
        else:
            if not _HASH.match(value.lower()):
                errors.append(
                    row_error(
                        index,
                        key,
                        name,
                        "invalid_hash",
                        "email_hash must be 64 hexadecimal characters.",
                        "Send the hex SHA-256 of the lower-cased email address, or send the email itself.",
                    )
                )
                continue
            keys[("email_hash", value.lower())] = None
    raise_row_errors(errors, allowed_fields=["external_id", "email", "email_hash"])
    return list(keys)
