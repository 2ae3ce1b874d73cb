"""The refusals of publishing (publish, rollback, the members of a version), each with a
stable code and a hint, and the two signals the worker side raises between its steps.

An approval request already open is `governance.approvals.ApprovalPending`; an archived
audience is `audiences.definitions.errors.AudienceArchived`; invalid rules are
`audiences.rules.InvalidRules`.
"""

from __future__ import annotations

from marketerapi.problems import ApplicationError

# --- refusals ------------------------------------------------------------------------------


class PublishInProgress(ApplicationError):
    status = 409
    code = "publish_in_progress"
    title = "A version of this audience is being built"
    hint = "Follow the running job; publish again once it has finished."


class OutsideChangeWindow(ApplicationError):
    status = 409
    code = "outside_change_window"
    title = "Publishes run only inside the environment's change windows"
    hint = "Publish again when the next window opens."


class VersionNotFound(ApplicationError):
    status = 404
    code = "version_not_found"
    title = "The audience has no such version"
    hint = "GET /api/v1/audiences/{id}/versions lists its versions."


class VersionNotReady(ApplicationError):
    status = 409
    code = "version_not_ready"
    title = "Only a version that went live can be rolled back to"
    hint = "Pick a version whose state is ready (GET /api/v1/audiences/{id}/versions)."


class VersionAlreadyLive(ApplicationError):
    status = 409
    code = "version_already_live"
    title = "That version is live already"
    hint = "There is nothing to roll back; pick an earlier version."


class CursorExpired(ApplicationError):
    status = 410
    code = "cursor_expired"
    title = "The version this cursor pages through is no longer kept"
    hint = "Start again without a cursor: the first page reads the live version."


# --- the worker's signals (never shown as problems) ----------------------------------------


class Superseded(Exception):
    """A newer publish replaced the version before it went live."""


class BuildFailed(Exception):
    """Why a build stopped before going live, in words for the job and the version."""

    def __init__(self, code: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
