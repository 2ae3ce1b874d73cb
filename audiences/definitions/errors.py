"""The refusals of audience definitions (create, edit, delete or archive, share, promote),
each with a stable code and a hint. Invalid rules are `audiences.rules.InvalidRules`; an
approval request already open is `governance.approvals.ApprovalPending`."""

from __future__ import annotations

from marketerapi.problems import ApplicationError


class AudienceNameTaken(ApplicationError):
    status = 409
    code = "audience_name_taken"
    title = "An audience with this name already exists in this environment"
    hint = "Choose another name, or edit the existing audience."


class NotTeamMember(ApplicationError):
    status = 403
    code = "not_team_member"
    title = "You can only give an audience to a team you belong to"
    hint = "Pick one of your teams as owner_team, or ask an admin."


class AudienceArchived(ApplicationError):
    status = 409
    code = "audience_archived"
    title = "The audience is archived"
    hint = "Archived audiences are kept for the record and cannot change; create a new audience instead."


class AudienceInUse(ApplicationError):
    status = 409
    code = "audience_in_use"
    title = "The audience is in use"
    hint = "Remove it from what uses it (listed in `used_by`) first, then try again."


class AudienceBuilding(ApplicationError):
    status = 409
    code = "audience_building"
    title = "The audience's first version is being built"
    hint = "Wait for the publish job to finish (GET /api/v1/jobs/{id}), then send DELETE again: it archives it."


class UnknownEnvironment(ApplicationError):
    status = 422
    code = "unknown_environment"
    title = "There is no such environment"
    hint = "Use the slug of an environment, e.g. production."


class ShareNotFound(ApplicationError):
    status = 404
    code = "share_not_found"
    title = "The audience is not shared with them"
    hint = "GET /api/v1/audiences/{id} lists the audience's shares."


class OwnerChangedByTransfer(ApplicationError):
    status = 400
    code = "owner_team_read_only"
    title = "The owner team is changed by a transfer, not by an edit"
    hint = (
        'Hand the audience to another team with POST /api/v1/audiences/{id}/transfer {"team": "<team>"} '
        "(Transfer on its page in the portal); only the owning team or an admin may."
    )


# The preview budget (budget.py).


class PreviewTooExpensive(ApplicationError):
    status = 422
    code = "preview_too_expensive"
    title = "The rules are too expensive to preview"
    hint = (
        "Split the rule into smaller audiences (combine them with `in_audience`), or remove some `contains` "
        "conditions on custom attributes and some event conditions."
    )


class PreviewTimedOut(ApplicationError):
    status = 422
    code = "preview_timed_out"
    title = "The preview took too long and was stopped"
    hint = (
        "Split the rule into smaller audiences (combine them with `in_audience`), or remove some `contains` "
        "conditions; `eq`, `in` and `starts_with` on built-in attributes are the fastest."
    )


class PreviewBusy(ApplicationError):
    status = 429
    code = "preview_busy"
    title = "Too many previews are running at once"
    hint = (
        "Try again in a few seconds (see Retry-After): your other previews, or other people's in this environment, "
        "are still running."
    )
