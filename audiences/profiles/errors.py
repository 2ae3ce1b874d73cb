"""The refusals of bulk ingestion (profiles, profile events, consent), and the row errors they list.

A batch is all-or-nothing: one bad row refuses the whole batch, and the problem lists
every bad row as `{"index", "pointer", "code", "message", "hint"}`. Pointers always
read `/<key>/<index>/<field>` (e.g. `/profiles/3/region`), also when the body was a
bare JSON array, so a client can map them back to its rows the same way either way.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from django.conf import settings

from marketerapi.problems import ApplicationError, UnknownFields


class BatchTooLarge(ApplicationError):
    status = 413
    code = "batch_too_large"
    title = "The batch has too many rows"
    hint = "Split the batch into requests of at most 10,000 rows each."


class InvalidRows(ApplicationError):
    status = 422
    code = "invalid_rows"
    title = "Some rows of the batch are not valid; nothing was applied"
    hint = "Fix every row listed in `errors` (each has its own hint) and send the whole batch again."


class MalformedBatch(ApplicationError):
    status = 400
    code = "invalid_request"
    title = "The request body does not have the expected shape; nothing was applied"
    hint = "Send a JSON object with a list of rows, or a bare JSON array of rows."


def row_error(index: int, key: str, field: str | None, code: str, message: str, hint: str) -> dict[str, Any]:
    pointer = f"/{key}/{index}" + (f"/{field}" if field else "")
    return {"index": index, "pointer": pointer, "code": code, "message": message, "hint": hint}


def check_batch_size(rows: Sequence[Any], key: str) -> None:
    limit = settings.BULK_MAX_ROWS
    if len(rows) > limit:
        raise BatchTooLarge(
            f"The batch has {len(rows):,} rows in `{key}`; at most {limit:,} are accepted per request.",
            hint=f"Split the batch into requests of at most {limit:,} rows each; "
            "each request is applied all-or-nothing on its own.",
            limit=limit,
            received=len(rows),
        )


def duplicate_row_errors(
    rows: Iterable[Any],
    *,
    key: str,
    field: str,
    identity: Callable[[Any], Hashable | None],
    what: str,
) -> list[dict[str, Any]]:
    """One error for each row whose identity already appeared earlier in the batch."""
    first_seen: dict[Hashable, int] = {}
    errors = []
    for index, row in enumerate(rows):
        ident = identity(row)
        if ident is None:
            continue
        if ident in first_seen:
            errors.append(
                row_error(
                    index,
                    key,
                    field,
                    "duplicate",
                    f"{what} {ident!r} already appears at index {first_seen[ident]} of this batch.",
                    "Send each row once per batch: merge the duplicates into one row.",
                )
            )
        else:
            first_seen[ident] = index
    return errors


def raise_row_errors(errors: list[dict[str, Any]], *, allowed_fields: Sequence[str] = ()) -> None:
    """Refuse a batch: 400 when rows name unknown fields or are not objects, 422 otherwise."""
    if not errors:
        return
    errors = sorted(errors, key=lambda e: (e.get("index", -1), e["pointer"]))
    bad_rows = len({e.get("index") for e in errors})
    detail = f"{len(errors):,} problem(s) in {bad_rows:,} row(s); nothing in this batch was applied."
    if any(e["code"] == "unknown_field" for e in errors):
        raise UnknownFields(detail, errors=errors, allowed_fields=list(allowed_fields))
    if any(e["code"] == "not_an_object" for e in errors):
        raise MalformedBatch(detail, errors=errors)
    raise InvalidRows(detail, errors=errors)


class PiiFilterRefused(ApplicationError):
    status = 403
    code = "pii_filter_refused"
    title = "Your role may not filter on personal data"
    hint = (
        'Filter on presence instead ({"attr": "email", "op": "is_null", "value": false}), or on the email domain '
        '({"attr": "email_domain", "op": "eq", "value": "example.com"}); only a compliance reviewer may filter on '
        "the value of personal data."
    )


class PiiLookupRefused(ApplicationError):
    status = 403
    code = "pii_lookup_refused"
    title = "Your role may not look profiles up by personal data"
    hint = (
        "Look profiles up by external_id (?external_id=…) instead; only a compliance reviewer may look them up by "
        "email address."
    )
