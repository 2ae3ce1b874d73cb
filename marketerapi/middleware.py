"""Request ids: accepted from `X-Request-ID` or generated, echoed on every response,
and carried into every log line and audit event of the request."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def current_request_id() -> str:
    return _request_id.get()


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        # Accept a caller's id only if it is safe to echo and to log.
        request_id = incoming if _VALID.match(incoming) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _has_nul(request: HttpRequest) -> list[str]:
    """The query parameters (and, for form posts, fields) holding a NUL character."""
    found = [f"?{key}" for key, values in request.GET.lists() if "\x00" in key or any("\x00" in v for v in values)]
    if request.method == "POST" and request.content_type in _FORM_TYPES:
        found += [key for key, values in request.POST.lists() if "\x00" in key or any("\x00" in v for v in values)]
    return found


class NulRefusalMiddleware:
    """Refuse a NUL character (`%00`) in the path, the query or a form: PostgreSQL cannot
    store or compare text holding one, so it would surface as a 500. JSON bodies are
    checked by the API's parser (marketerapi/parsers.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = (["the path"] if "\x00" in request.path else []) + _has_nul(request)
        if not where:
            return self.get_response(request)
        from django.http import JsonResponse

        from marketerapi.problems import PROBLEM_CONTENT_TYPE, error_page, problem

        if not request.path.startswith("/api/"):
            return error_page(request, status=400)
        body = problem(
            status=400,
            code="nul_character",
            title="The request contains a NUL character",
            detail=f"A NUL character (%00) in {', '.join(where[:10])}; nothing was done.",
            hint="Remove the %00 (\\u0000) characters; text may not contain them.",
        )
        return JsonResponse(body, status=400, content_type=PROBLEM_CONTENT_TYPE)


class ServiceOutageMiddleware:
    """Redis or PostgreSQL not answering while a view runs: a 503 with Retry-After, in the
    door's words (problem+json `service_unavailable` under /api/, the friendly page in the
    portal and the admin) — never a 500. The API's views get the same from DRF's handler
    (marketerapi.problems.translate); an outage in a middleware before the view (the session
    or the user, read from a database that is down) reaches handler500, which answers the same."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from marketerapi.problems import is_service_outage, service_unavailable_response

        if not is_service_outage(exception):
            return None
        logging.getLogger("marketerapi.problems").error("a service did not answer: %s", exception, exc_info=exception)
        return service_unavailable_response(request)


class ContentSecurityPolicyMiddleware:
    """The Content-Security-Policy header (settings.CONTENT_SECURITY_POLICY) on every
    response that does not set its own: scripts only from this server's static files (no
    inline scripts, no eval), nothing framed, forms posted only here."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        from django.conf import settings

        self.policy = "; ".join(
            f"{directive} {' '.join(sources)}".strip()
            for directive, sources in settings.CONTENT_SECURITY_POLICY.items()
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
