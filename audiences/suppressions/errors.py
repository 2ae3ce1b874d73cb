"""The refusals of suppression lists, each with a stable code and a hint. Bad entries are
the ingestion's `invalid_rows` (audiences/profiles/errors.py), listing every bad row."""

from __future__ import annotations

from marketerapi.problems import ApplicationError, NotFound


class SuppressionListNotFound(NotFound):
    code = "suppression_list_not_found"
    title = "There is no such suppression list"
    hint = 'GET /api/v1/suppressions/ lists them; send {"name": …} to create a named list.'


class SuppressionListExists(ApplicationError):
    status = 409
    code = "suppression_list_exists"
    title = "A suppression list with this name exists already"
    hint = 'Add entries to it with {"list": "<name>", "entries": [...]}, or choose another name.'
