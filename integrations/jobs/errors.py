"""The refusals of the jobs API, each with a stable code and a hint."""

from __future__ import annotations

from marketerapi.problems import NotFound


class JobNotFound(NotFound):
    code = "job_not_found"
    hint = "Use the job id returned by the call that started it, with a token of the same environment."
