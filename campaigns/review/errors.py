"""The refusals of the manual review queue."""

from __future__ import annotations

from marketerapi.problems import ApplicationError


class ReviewItemClosed(ApplicationError):
    status = 409
    code = "review_item_closed"
    title = "The review item was already dealt with"
    hint = "GET /api/v1/review-items/ lists what is still waiting."
