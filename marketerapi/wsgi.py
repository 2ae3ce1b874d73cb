"""The WSGI application (gunicorn serves `marketerapi.wsgi:application`).

Django reads a request body by its Content-Length. A chunked request (`Transfer-Encoding:
chunked`, no Content-Length) therefore reached the views as an empty body, and the API
answered as if nothing had been sent. gunicorn de-chunks the stream and says so with
`wsgi.input_terminated`; `ChunkedBodies` reads such a body (up to MAX_REQUEST_BYTES) and
gives Django its length. A server that cannot de-chunk gets a 411 problem instead of an
empty body.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketerapi.settings")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _problem(start_response: StartResponse, status: int, reason: str, code: str, title: str, hint: str) -> list[bytes]:
    from marketerapi.middleware import new_request_id

    request_id = new_request_id()
    body = json.dumps(
        {
            "type": "https://marketerapi.dev/errors/" + code.replace("_", "-"),
            "title": title,
            "status": status,
            "detail": title,
            "code": code,
            "hint": hint,
            "request_id": request_id,
        }
    ).encode()
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", "application/problem+json"),
            ("Content-Length", str(len(body))),
            ("X-Request-ID", request_id),
        ],
    )
    return [body]


class ChunkedBodies:
    """Give Django the length of a chunked request body (see the module docstring)."""

    def __init__(self, app: WSGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            if not environ.get("wsgi.input_terminated"):
                return _problem(
                    start_response,
                    411,
                    "Length Required",
                    "length_required",
                    "The request body has no Content-Length",
                    "Send the body with a Content-Length header instead of Transfer-Encoding: chunked.",
                )
            body = environ["wsgi.input"].read(self.limit + 1)
            if len(body) > self.limit:
                return _problem(
                    start_response,
                    413,
                    "Content Too Large",
                    "payload_too_large",
                    "The request is too large",
                    f"Send at most {self.limit:,} bytes per request; split the batch.",
                )
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def _application() -> WSGIApp:
    from django.conf import settings

    django_app = get_wsgi_application()
    return ChunkedBodies(django_app, settings.MAX_REQUEST_BYTES)


application = _application()

# OpenTelemetry, when OTEL_* is set and the packages are installed (marketerapi/tracing.py).
from marketerapi import tracing  # noqa: E402

tracing.configure()
