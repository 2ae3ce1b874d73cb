"""The refusals of the campaign lifecycle (activate, pause, resume, cancel)."""

from __future__ import annotations

from marketerapi.problems import ApplicationError


class CampaignNotReady(ApplicationError):
    status = 422
    code = "campaign_not_ready"
    title = "The campaign is not ready to activate"
    hint = "Fix each failing check listed in `errors`; GET /api/v1/campaigns/{id}/readiness shows them all."


class CampaignStateConflict(ApplicationError):
    status = 409
    code = "campaign_state_conflict"
    title = "The campaign cannot do that in its current state"
    hint = "GET /api/v1/campaigns/{id} shows its state; each action names the states it applies to."


class CampaignOutsideChangeWindow(ApplicationError):
    status = 409
    code = "campaign_outside_change_window"
    title = "Campaigns are activated only inside change windows here"
    hint = "Activate again when the next window opens, or schedule the campaign inside a window."
