"""One error hierarchy and one handler: every API failure is RFC 9457 problem+json.

Services raise `ApplicationError` subclasses; DRF's own exceptions, Django's `Http404`,
`PermissionDenied` and `ValidationError` and anything unexpected are translated here.
Every problem carries `code`, `hint` and `request_id`; a 500 never carries a trace.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.html import escape
from django.views.debug import SafeExceptionReporterFilter
from rest_framework import exceptions as drf
from rest_framework.response import Response

from marketerapi.middleware import current_request_id

logger = logging.getLogger("marketerapi.problems")

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://marketerapi.dev/errors/"


class ApplicationError(Exception):
    """A refusal or failure a caller can act on. Subclasses set the class attributes."""

    status: int = 400
    code: str = "bad_request"
    title: str = "The request cannot be processed"
    hint: str = "Check the request against the API documentation at /api/docs/."

    def __init__(
        self,
        detail: str | None = None,
        *,
        hint: str | None = None,
        title: str | None = None,
        code: str | None = None,
        status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.detail = detail or ""
        if hint is not None:
            self.hint = hint
        if title is not None:
            self.title = title
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.detail or self.title)

    def as_problem(self) -> dict[str, Any]:
        return problem(
            status=self.status,
            code=self.code,
            title=self.title,
            detail=self.detail,
            hint=self.hint,
            errors=self.errors,
            **self.extra,
        )


class InvalidInput(ApplicationError):
    status = 422
    code = "invalid_input"
    title = "Some values are not valid"
    hint = "Fix each entry listed in `errors`; its `hint` says how."


class UnknownFields(ApplicationError):
    status = 400
    code = "unknown_fields"
    title = "The request has fields this endpoint does not know; nothing was applied"
    hint = "Remove or rename the fields listed in `errors`; `allowed_fields` lists the fields this endpoint reads."


class MalformedRequest(ApplicationError):
    status = 400
    code = "invalid_request"
    title = "The request body does not have the expected shape"
    hint = "Fix each entry listed in `errors` and send the request again."


class NotFound(ApplicationError):
    status = 404
    code = "not_found"
    title = "Not found"
    hint = "Check the id, and that your token belongs to the environment the object lives in."


class Forbidden(ApplicationError):
    status = 403
    code = "permission_denied"
    title = "You may not do this"
    hint = "Ask an admin for the role this action needs."


class Conflict(ApplicationError):
    status = 409
    code = "conflict"
    title = "The request conflicts with the current state"
    hint = "Reload the object and try again."


class PayloadTooLarge(ApplicationError):
    status = 413
    code = "payload_too_large"
    title = "The request is too large"
    hint = "Split the batch into smaller requests."


def problem(
    *,
    status: int,
    code: str,
    title: str,
    detail: str = "",
    hint: str = "",
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
        "hint": hint,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    body["request_id"] = current_request_id()
    return body


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = Response(body, status=body["status"], headers=headers, content_type=PROBLEM_CONTENT_TYPE)
    return response


def _pointer(path: list[str]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else ""


def flatten_validation(detail: Any, path: list[str] | None = None) -> list[dict[str, Any]]:
    """Turn DRF's nested error detail into a flat list of {pointer, code, message, hint}."""
    path = path or []
    out: list[dict[str, Any]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            sub = path if key == "non_field_errors" else [*path, str(key)]
            out.extend(flatten_validation(value, sub))
    elif isinstance(detail, list):
        if all(isinstance(item, (str, drf.ErrorDetail)) for item in detail):
            for item in detail:
                out.append(_error_entry(path, item))
        else:
            for index, item in enumerate(detail):
                if item:
                    out.extend(flatten_validation(item, [*path, str(index)]))
    else:
        out.append(_error_entry(path, detail))
    return out


_HINTS = {
    "required": "Add this field; it is required.",
    "null": "Send a value here; null is not allowed.",
    "blank": "Send a non-empty value.",
    "invalid_choice": "Use one of the allowed values.",
    "invalid": "Send a value of the documented type.",
    "max_length": "Shorten the value.",
    "date": "Send a date-time in ISO 8601, e.g. 2026-11-01T10:00:00Z.",
    "does_not_exist": "Check the id.",
    "not_a_list": "Send a JSON array here.",
    "not_a_dict": "Send a JSON object here.",
}


def _error_entry(path: list[str], item: Any) -> dict[str, Any]:
    code = getattr(item, "code", None) or "invalid"
    return {
        "pointer": _pointer(path),
        "code": code,
        "message": str(item),
        "hint": _HINTS.get(code, "Fix this value and send the request again."),
    }


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception out of an API view becomes a problem."""
    if isinstance(exc, ApplicationError):
        return problem_response(exc.as_problem(), exc.headers)
    body, headers = translate(exc)
    return problem_response(body, headers)


def translate(exc: Exception) -> tuple[dict[str, Any], dict[str, str]]:
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        return exc.as_problem(), exc.headers
    if isinstance(exc, (Http404, drf.NotFound)):
        return NotFound().as_problem(), headers
    if isinstance(exc, DjangoPermissionDenied):
        return Forbidden(str(exc) or None).as_problem(), headers
    if isinstance(exc, DjangoValidationError):
        errors = [
            {"pointer": "", "code": e.code or "invalid", "message": str(m), "hint": "Fix this value."}
            for e in exc.error_list
            for m in e.messages
        ]
        return InvalidInput(errors=errors).as_problem(), headers
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge().as_problem(), headers
    if isinstance(exc, drf.ParseError):
        return (
            problem(
                status=400,
                code="malformed_json",
                title="The request body is not valid JSON",
                detail=str(exc.detail),
                hint="Check the JSON near the position named in `detail` (a missing comma, quote or bracket).",
            ),
            headers,
        )
    if isinstance(exc, drf.ValidationError):
        return (
            MalformedRequest(
                "The request has problems listed in `errors`.", errors=flatten_validation(exc.detail)
            ).as_problem(),
            headers,
        )
    if isinstance(exc, drf.AuthenticationFailed):
        hint = getattr(exc, "hint", None) or "Send a valid token as `Authorization: Bearer mk_<environment>_…`."
        return (
            problem(
                status=401,
                code=str(exc.get_codes()) if isinstance(exc.get_codes(), str) else "authentication_failed",
                title="Authentication failed",
                detail=str(exc.detail),
                hint=hint,
            ),
            {"WWW-Authenticate": 'Bearer realm="api"'},
        )
    if isinstance(exc, drf.NotAuthenticated):
        return (
            problem(
                status=401,
                code="not_authenticated",
                title="Authentication required",
                detail=str(exc.detail),
                hint="Send `Authorization: Bearer mk_<environment>_…`, or sign in to the portal. A developer "
                "issues tokens (POST /api/v1/tokens/; on a development checkout, `make token`).",
            ),
            {"WWW-Authenticate": 'Bearer realm="api"'},
        )
    if isinstance(exc, drf.PermissionDenied):
        return Forbidden(str(exc.detail)).as_problem(), headers
    if isinstance(exc, drf.MethodNotAllowed):
        return (
            problem(
                status=405,
                code="method_not_allowed",
                title="Method not allowed",
                detail=str(exc.detail),
                hint="See /api/docs/ for the methods this path accepts.",
            ),
            headers,
        )
    if isinstance(exc, drf.UnsupportedMediaType):
        return (
            problem(
                status=415,
                code="unsupported_media_type",
                title="Unsupported content type",
                detail=str(exc.detail),
                hint="Send the body as JSON with `Content-Type: application/json`.",
            ),
            headers,
        )
    if isinstance(exc, drf.NotAcceptable):
        return (
            problem(
                status=406,
                code="not_acceptable",
                title="Not acceptable",
                detail=str(exc.detail),
                hint="Accept application/json.",
            ),
            headers,
        )
    if isinstance(exc, drf.Throttled):
        wait = int(getattr(exc, "wait", None) or 1)
        headers["Retry-After"] = str(max(wait, 1))
        return (
            problem(
                status=429,
                code="rate_limited",
                title="Too many requests",
                detail=str(exc.detail),
                hint=f"Wait {max(wait, 1)} seconds (see Retry-After) and send the request again; "
                "spread bulk work over time or ask an admin for a higher limit.",
            ),
            headers,
        )
    if isinstance(exc, drf.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        return (
            problem(
                status=exc.status_code,
                code=str(code),
                title=str(exc.default_detail),
                detail=str(exc.detail),
                hint="See /api/docs/ for this endpoint's failure modes.",
            ),
            headers,
        )
    if is_service_outage(exc):
        logger.error("a service did not answer: %s", exc, exc_info=exc)
        headers["Retry-After"] = str(OUTAGE_RETRY_SECONDS)
        return service_unavailable_problem(), headers
    logger.exception("unhandled error", exc_info=exc)
    return server_error_problem(), headers


# user:password@ inside a URL (DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, a destination's endpoint).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@/\s]+@")


def redact_url_passwords(text: str) -> str:
    """postgres://app:secret@db/x → postgres://app:********@db/x"""
    return _URL_PASSWORD.sub(r"\g<head>********@", text)


class SecretRedactingReporterFilter(SafeExceptionReporterFilter):
    """Django's filter of error reports (the DEBUG page, error e-mails) hides settings and
    headers named like secrets (…KEY, …TOKEN, Authorization, Cookie); this one also hides the
    password inside any URL, such as DATABASE_URL and the broker's."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return redact_url_passwords(cleansed)
        return cleansed


# How long a caller is asked to wait when Redis (token and permission cache, rate limits) is down.
OUTAGE_RETRY_SECONDS = 30


def is_service_outage(exc: BaseException) -> bool:
    """A service the request needs did not answer, so the caller should retry, not report a
    bug: Redis (refused, timed out, dropped) or PostgreSQL (refused, restarting, the
    connection lost or out of slots). A query's own failure — a statement timeout, a lock
    or serialization conflict, a constraint — is not an outage."""
    try:
        import redis
        from django_redis.exceptions import ConnectionInterrupted
    except ImportError:  # pragma: no cover - both are requirements
        return False
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, ConnectionInterrupted)):
        return True
    return is_database_outage(exc)


# SQLSTATEs of a PostgreSQL that is not there: connection exceptions (class 08), an
# administrator or crash shutdown, a server starting up, and no free connection slot.
_DATABASE_OUTAGE_STATES = ("57P01", "57P02", "57P03", "53300")


def is_database_outage(exc: BaseException) -> bool:
    from django.db import InterfaceError, OperationalError, connection

    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    if connection.vendor != "postgresql":
        return False
    if isinstance(exc, InterfaceError):
        return True  # "connection already closed": the server went away under us
    cause = exc.__cause__
    state = getattr(cause, "sqlstate", None)
    if state is None:
        # psycopg raises a bare OperationalError (no SQLSTATE) when it cannot connect or
        # the server closed the connection unexpectedly.
        return True
    return state.startswith("08") or state in _DATABASE_OUTAGE_STATES


def service_unavailable_problem() -> dict[str, Any]:
    return problem(
        status=503,
        code="service_unavailable",
        title="A service the API depends on is not answering",
        detail="The request could not be checked or carried out; the error was logged with this request id.",
        hint=f"Try again in {OUTAGE_RETRY_SECONDS} seconds (see Retry-After); a POST sent again with the same "
        "Idempotency-Key is done at most once. If it persists, give the request_id to your platform team.",
    )


def server_error_problem() -> dict[str, Any]:
    return problem(
        status=500,
        code="server_error",
        title="Something went wrong on our side",
        detail="The error was logged with this request id; nothing in your request was applied.",
        hint="Try again in a minute; if it persists, give the request_id to your platform team.",
    )


# The page shown to people in a browser for a status, in words they can act on. Which
# template renders it is a setting (ERROR_PAGE_TEMPLATE: the portal's layout), so the core
# never imports the portal.
ERROR_PAGES = {
    400: ("Bad request", "Check the address or the form and try again."),
    403: ("You may not open this page", "Ask an admin for the role this page needs."),
    404: ("Page not found", "Check the address, or go back to the home page."),
    503: (
        "A service is not answering",
        "Nothing was changed. Try again in a minute; if it persists, give the request id below to your platform team.",
    ),
    500: (
        "Something went wrong on our side",
        "Try again in a minute. If it persists, give the request id below to your platform team.",
    ),
}


def error_page(request: HttpRequest, *, status: int) -> HttpResponse:
    """The friendly error page (title, hint, request id), never a trace. If the layout itself
    cannot be rendered (the database is down, say), a bare page says the same."""
    title, hint = ERROR_PAGES.get(status, ERROR_PAGES[500])
    context = {"status": status, "title": title, "hint": hint, "request_id": current_request_id()}
    response: HttpResponse
    try:
        response = render(request, settings.ERROR_PAGE_TEMPLATE, context, status=status)
    except Exception:
        logger.exception("the error page could not be rendered; answering a bare one")
        body = (
            f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1><p>{escape(hint)}</p>"
            f'<p>Request id: <code>{escape(context["request_id"])}</code></p><p><a href="/">Home</a></p>'
        )
        response = HttpResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = str(OUTAGE_RETRY_SECONDS)
    return response


def service_unavailable_response(request: HttpRequest) -> HttpResponse:
    """A 503 in the door's words: problem+json under /api/ (or for a JSON client), the
    friendly page in a browser; both with Retry-After."""
    if _wants_problem(request):
        response = JsonResponse(service_unavailable_problem(), status=503, content_type=PROBLEM_CONTENT_TYPE)
        response["Retry-After"] = str(OUTAGE_RETRY_SECONDS)
        return response
    return error_page(request, status=503)


def _wants_problem(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")


def api_path_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """A path under /api/ that names no endpoint: a problem, never an HTML page."""
    return JsonResponse(
        problem(
            status=404,
            code="not_found",
            title="Not found",
            detail=f"No endpoint at {request.path}.",
            hint="See /api/docs/ for the API's paths; every path starts with /api/v1/.",
        ),
        status=404,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def handler404(request: HttpRequest, exception: Exception | None = None) -> Any:
    if _wants_problem(request):
        return api_path_not_found(request)
    return error_page(request, status=404)


def handler500(request: HttpRequest) -> Any:
    # An outage raised outside a view (the session or user lookup in a middleware, with the
    # database down) reaches only this handler; it is a 503, not a bug.
    exc = sys.exc_info()[1]
    if exc is not None and is_service_outage(exc):
        return service_unavailable_response(request)
    if _wants_problem(request):
        return JsonResponse(server_error_problem(), status=500, content_type=PROBLEM_CONTENT_TYPE)
    return error_page(request, status=500)


def handler403(request: HttpRequest, exception: Exception | None = None) -> Any:
    if _wants_problem(request):
        return JsonResponse(Forbidden().as_problem(), status=403, content_type=PROBLEM_CONTENT_TYPE)
    return error_page(request, status=403)


def handler400(request: HttpRequest, exception: Exception | None = None) -> Any:
    if _wants_problem(request):
        return JsonResponse(
            problem(status=400, code="bad_request", title="Bad request", hint="Check the request's headers and body."),
            status=400,
            content_type=PROBLEM_CONTENT_TYPE,
        )
    return error_page(request, status=400)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a portal session's unsafe call without its CSRF token. Under /api/ a
    problem (the API answers nothing else), in a browser the friendly 403 page."""
    if _wants_problem(request):
        body = problem(
            status=403,
            code="csrf_failed",
            title="The request's CSRF check failed",
            detail="A call with a portal session cookie that changes something must carry the CSRF token.",
            hint="Send the X-CSRFToken header with the csrftoken cookie's value, or call the API with "
            "`Authorization: Bearer mk_…` and no session cookie.",
        )
        return JsonResponse(body, status=403, content_type=PROBLEM_CONTENT_TYPE)
    return error_page(request, status=403)
