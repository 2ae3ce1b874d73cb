"""The refusals of campaign definitions (create, edit, delete, share), each with a stable
code and a hint. Bad values are `marketerapi.problems.InvalidInput` (422, one entry per
problem with its pointer and hint)."""

from __future__ import annotations

from marketerapi.problems import ApplicationError


class CampaignNameTaken(ApplicationError):
    status = 409
    code = "campaign_name_taken"
    title = "A campaign with this name already exists in this environment"
    hint = "Choose another name, or edit the existing campaign."


class CampaignNotEditable(ApplicationError):
    status = 409
    code = "campaign_not_editable"
    title = "The campaign can no longer change"
    hint = "Only draft campaigns change; pause or cancel a running one, or copy it into a new draft."
