"""Refusals of the metrics endpoints and of policy simulation and proposals."""

from __future__ import annotations

from marketerapi.problems import ApplicationError


class InvalidPeriod(ApplicationError):
    status = 422
    code = "invalid_period"
    title = "The period is not valid"
    hint = (
        "Send since and until as ISO 8601 date-times such as 2026-11-01T00:00:00Z (or dates), since before "
        "until; without them the last 30 days are measured."
    )


class InvalidRule(ApplicationError):
    status = 422
    code = "invalid_rule"
    title = "The proposed rule is not valid"
    hint = "Fix each entry listed in `errors`; its `hint` says how. GET /api/v1/metrics/policy shows what fires now."
