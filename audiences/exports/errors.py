"""Refusals of exports, each with a stable code and a hint a marketer can act on."""

from __future__ import annotations

from marketerapi.problems import ApplicationError, Conflict, InvalidInput, NotFound


class ExportNotFound(NotFound):
    code = "export_not_found"
    hint = "Check the id; GET /api/v1/exports/ lists the exports you may see in this environment."


class ExportFieldUnknown(InvalidInput):
    code = "export_field_unknown"
    title = "Some fields cannot be exported"
    hint = "Use the profile columns or a custom attribute as attributes.<key>; each entry in `errors` names one."


class ExportFieldForbidden(ApplicationError):
    status = 403
    code = "export_field_forbidden"
    title = "Your role may not export these fields with PII"
    hint = 'Export them masked ("pii": false), leave them out, or ask a compliance reviewer to run an export with PII.'


class ExportAudienceNotPublished(Conflict):
    code = "export_audience_not_published"
    title = "The audience has no live version to export"
    hint = "Publish the audience first (POST /api/v1/audiences/{id}/publish), then export it."


class ExportNotReady(Conflict):
    code = "export_not_ready"
    title = "The export's file is not ready"
    hint = "Follow the export at GET /api/v1/exports/{id}; download it once its state is `ready`."


class ExportExpired(ApplicationError):
    status = 410
    code = "export_expired"
    title = "The export's file has expired and was deleted"
    hint = "Run the export again (POST /api/v1/exports/)."


class ExportLinkInvalid(ApplicationError):
    status = 403
    code = "export_link_invalid"
    title = "This download link is not valid"
    hint = "Use the link exactly as GET /api/v1/exports/{id}/download gave it, or ask for a new one there."


class ExportLinkExpired(ApplicationError):
    status = 410
    code = "export_link_expired"
    title = "This download link has expired"
    hint = "Ask for a new link: GET /api/v1/exports/{id}/download."


class ExportNotYours(ApplicationError):
    status = 403
    code = "export_not_yours"
    title = "Only the person who ran an export may download it"
    hint = "Run the export yourself (POST /api/v1/exports/); its file is then yours to download."
