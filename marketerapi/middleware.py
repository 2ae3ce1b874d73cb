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
        from marketerapi import logs

        # Every log line of the request carries its id and door; the actor's builder adds who and where.
        log_token = logs.open_context(request_id=request_id, door=door_of(request.path))
        try:
            response = self.get_response(request)
        finally:
            logs.close_context(log_token)
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


# --- the request log ----------------------------------------------------------------

# Paths that are not requests a person makes: files, the liveness probe, the scrape.
_NOT_LOGGED = ("/static/", "/favicon.ico", "/healthz", "/metrics")


def door_of(path: str) -> str:
    """api, admin or portal: the door a request came through, by its path."""
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "portal"


def problem_code_of(response: HttpResponse) -> str:
    """The problem `code` of a refusal: from a DRF Response's data, a problem+json body,
    or the `problem_code` a portal page that shows a problem leaves on its response."""
    code = getattr(response, "problem_code", None)
    if code:
        return str(code)[:64]
    data = getattr(response, "data", None)
    if isinstance(data, dict) and "code" in data:
        return str(data["code"])[:64]
    if response.get("Content-Type", "").startswith("application/problem+json") and not response.streaming:
        import json

        try:
            body = json.loads(response.content[:65536])
        except ValueError:
            return ""
        return str(body.get("code", ""))[:64] if isinstance(body, dict) else ""
    return ""


def _signed_in_user(request: HttpRequest) -> object | None:
    """The user if someone already looked (DRF's authentication, a page): a lazy user
    nobody evaluated is left alone, so logging never costs a session query."""
    from django.utils.functional import SimpleLazyObject, empty

    user = request.__dict__.get("user")
    if user is None:
        return None
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    return user if getattr(user, "is_authenticated", False) else None


class RequestLogMiddleware:
    """Hands one row per request to REQUEST_LOG_SINK (governance.requestlog.buffer.add):
    who, token, door, method, route name, status, problem code, rate class, latency,
    request id and environment. Nothing is written on the request's thread."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from django.conf import settings
        from django.utils.module_loading import import_string

        self.get_response = get_response
        self.enabled = bool(settings.REQUEST_LOG_ENABLED)
        self.sink: Callable[[dict], None] = import_string(settings.REQUEST_LOG_SINK)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self.enabled or request.path.startswith(_NOT_LOGGED):
            return self.get_response(request)
        import time

        started = time.perf_counter()
        response = self.get_response(request)
        latency_ms = (time.perf_counter() - started) * 1000.0
        try:
            self.sink(self._row(request, response, latency_ms))
        except Exception:  # the log must never fail the request it records
            logging.getLogger("marketerapi.requestlog").exception("request log: the row could not be queued")
        return response

    def _row(self, request: HttpRequest, response: HttpResponse, latency_ms: float) -> dict:
        from django.utils import timezone

        user = _signed_in_user(request)
        token = getattr(request, "auth", None)
        actor = getattr(request, "marketerapi_actor", None)
        environment_id = getattr(getattr(actor, "environment", None), "pk", None)
        if environment_id is None:
            environment_id = getattr(token, "environment_id", None)
        match = getattr(request, "resolver_match", None)
        result = getattr(request, "ratelimit_result", None)
        return {
            "occurred_at": timezone.now(),
            "environment_id": environment_id,
            "user_id": getattr(user, "pk", None),
            "username": user.get_username()[:150] if user is not None else "",  # type: ignore[attr-defined]
            "token_id": getattr(token, "pk", None) if hasattr(token, "environment_id") else None,
            "door": door_of(request.path),
            "method": (request.method or "")[:8],
            "route": (match.view_name if match is not None else "")[:120],
            "status": response.status_code,
            "code": problem_code_of(response) if response.status_code >= 400 else "",
            "rate_class": getattr(result, "rate_class", "") or "",
            "latency_ms": round(latency_ms, 3),
            "request_id": getattr(request, "request_id", "")[:128],
        }
