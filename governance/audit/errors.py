"""The audit trail's errors. Neither is an ApplicationError: both are programming or
deployment errors that no caller of the API can fix, so they surface as a 500 (and in the
logs), never as a problem with a hint."""

from __future__ import annotations


class AppendOnly(Exception):
    """Audit events are never changed or deleted."""


class ChainWriteError(RuntimeError):
    """The database computed another hash than Python for the same row (never expected:
    the transaction is rolled back rather than a row written that verify would reject)."""
