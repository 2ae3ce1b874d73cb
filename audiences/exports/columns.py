"""What an export may contain and how one row is written.

Fields are the profile's columns (`PROFILE_COLUMNS`) and its custom attributes as
`attributes.<key>` (a key the environment's attribute catalogue knows). PII is the
profile's PII columns (audiences/profiles/pii.py) and every custom attribute the catalogue
marks as personal data (`CatalogueEntry.pii`). A masked export writes PII through the same
masks as the API (a PII custom attribute becomes `***`); a PII export writes it as stored.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audiences.models import CatalogueEntry, CatalogueKind
from audiences.profiles.pii import MASKS, PII_FIELDS, STARS
from governance.models import Environment

PROFILE_COLUMNS: tuple[str, ...] = (
    "external_id",
    "email",
    "phone",
    "push_token",
    "first_name",
    "last_name",
    "locale",
    "country",
    "region",
    "lifecycle_stage",
    "created_at",
    "updated_at",
)
ATTRIBUTE_PREFIX = "attributes."
DEFAULT_FIELDS: tuple[str, ...] = ("external_id", "email", "region", "lifecycle_stage")
MAX_FIELDS = 50


@dataclass(frozen=True)
class FieldPlan:
    """The checked fields of an export: in order, and which of them are PII."""

    fields: tuple[str, ...]
    pii_fields: tuple[str, ...]


def _mask_attribute(value: Any) -> Any:
    return None if value is None or value == "" else STARS


def plan_fields(environment: Environment, fields: Sequence[str]) -> tuple[FieldPlan, list[dict[str, str]]]:
    """The fields checked against what exists: the plan, and one problem per unknown field
    (with a did-you-mean)."""
    attributes = dict(
        CatalogueEntry.objects.filter(environment=environment, kind=CatalogueKind.ATTRIBUTE, event_type="").values_list(
            "key", "pii"
        )
    )
    known = [*PROFILE_COLUMNS, *(ATTRIBUTE_PREFIX + key for key in sorted(attributes))]
    problems: list[dict[str, str]] = []
    pii: list[str] = []
    for index, name in enumerate(fields):
        if name in PROFILE_COLUMNS:
            if name in PII_FIELDS:
                pii.append(name)
            continue
        if name.startswith(ATTRIBUTE_PREFIX) and name[len(ATTRIBUTE_PREFIX) :] in attributes:
            if attributes[name[len(ATTRIBUTE_PREFIX) :]]:
                pii.append(name)
            continue
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        problems.append(
            {
                "pointer": f"/fields/{index}",
                "code": "unknown_field",
                "message": f"{name!r} is not a field of profiles in {environment.slug}"
                + (f" — did you mean {near[0]!r}?" if near else "."),
                "hint": "Profile columns: "
                + ", ".join(PROFILE_COLUMNS)
                + "; custom attributes as attributes.<key> (the attribute catalogue lists the keys).",
            }
        )
    return FieldPlan(tuple(fields), tuple(pii)), problems


def select_expressions(fields: Sequence[str]) -> dict[str, Any]:
    """Query expressions for .values_list(): profile columns by name (through the membership's
    profile), custom attributes as text."""
    from django.db.models import F
    from django.db.models.fields.json import KeyTextTransform

    expressions: dict[str, Any] = {}
    for index, name in enumerate(fields):
        if name.startswith(ATTRIBUTE_PREFIX):
            expressions[f"c{index}"] = KeyTextTransform(name[len(ATTRIBUTE_PREFIX) :], "profile__attributes")
        else:
            expressions[f"c{index}"] = F(f"profile__{name}")
    return expressions


def row_transform(plan: FieldPlan, *, unmasked: bool) -> Callable[[Sequence[Any]], list[Any]]:
    """A function turning one database row into the values written: dates as ISO 8601, PII
    masked unless `unmasked`."""
    masks: list[Callable[[Any], Any] | None] = []
    for name in plan.fields:
        if unmasked or name not in plan.pii_fields:
            masks.append(None)
        else:
            masks.append(MASKS.get(name, _mask_attribute))
    indexed = [(i, m) for i, m in enumerate(masks) if m is not None]
    dated = {i for i, name in enumerate(plan.fields) if name in ("created_at", "updated_at")}

    def transform(row: Sequence[Any]) -> list[Any]:
        values = list(row)
        for i in dated:
            value = values[i]
            if isinstance(value, datetime):
                values[i] = value.isoformat()
        for i, mask in indexed:
            values[i] = mask(values[i])
        return values

    return transform


class Writer:
    """Writes rows as CSV (with a header) or JSON lines into a binary file, in chunks."""

    def __init__(self, out: Any, fmt: str, fields: Sequence[str]) -> None:
        self.out = out
        self.fmt = fmt
        self.fields = list(fields)
        self.size = 0
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\n")
        if fmt == "csv":
            self._csv.writerow(self.fields)

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        if self.fmt == "csv":
            self._csv.writerows(rows)
        else:
            fields = self.fields
            # Compact and UTF-8, as PostgreSQL's row_to_json writes it (the COPY path, copy.py).
            dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
            self._buffer.write("".join(dumps(dict(zip(fields, row, strict=True))) + "\n" for row in rows))
        self.flush()

    def flush(self) -> None:
        data = self._buffer.getvalue().encode()
        if data:
            self.out.write(data)
            self.size += len(data)
        self._buffer.seek(0)
        self._buffer.truncate()
