"""The refusals of the approval workflow, each with a stable code and a hint (docs/approvals.md)."""

from __future__ import annotations

from marketerapi.problems import ApplicationError


class SelfApproval(ApplicationError):
    status = 403
    code = "self_approval"
    title = "You cannot vote on your own request"
    hint = "Someone else with the role the request names must approve it; you may cancel it instead."


class NotEligible(ApplicationError):
    status = 403
    code = "not_eligible"
    title = "Your roles do not fill an open step of this request"
    hint = "Ask someone with the role named in `detail`; GET /api/v1/approvals/{id} lists the open steps."


class NotRequester(ApplicationError):
    status = 403
    code = "not_requester"
    title = "Only the requester may cancel a request"
    hint = "Reject it instead, with a comment, if your role fills an open step."


class AlreadyVoted(ApplicationError):
    status = 409
    code = "already_voted"
    title = "You already voted on this request"
    hint = "Approvals come from distinct people; ask another person with an open step's role."


class ApprovalClosed(ApplicationError):
    status = 409
    code = "approval_closed"
    title = "The request is no longer open"
    hint = "GET /api/v1/approvals/{id} shows its state; file the action again for a new request."


class ApprovalExpired(ApplicationError):
    status = 409
    code = "approval_expired"
    title = "The request expired"
    hint = "Requests expire 72 hours after they were filed; file the action again for a new request."


class CommentRequired(ApplicationError):
    status = 422
    code = "comment_required"
    title = "A rejection needs a comment"
    hint = 'Say what should change, e.g. {"comment": "Reach is too wide; exclude opted-out regions."}'


class ApprovalStale(ApplicationError):
    status = 409
    code = "approval_stale"
    title = "The target changed after the request was filed"
    hint = (
        "What you would approve is no longer what the request shows (see `changes`). Ask the requester to "
        "request it again: the new request replaces this one."
    )


class ApprovalPending(ApplicationError):
    status = 409
    code = "approval_pending"
    title = "An approval request for this is already open"
    hint = "Follow the open request at its url; cancel it there to file a new one."
