"""The API's routes read off the URL configuration, for the suites that must cover every one
(tests/test_authorization_matrix.py, tests/governance/test_audit_completeness.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")

_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def readable(route: str) -> str:
    """api/v1/^webhooks/(?P<webhook_id>[0-9]+)/?$ → /api/v1/webhooks/{webhook_id}"""
    route = _GROUP.sub(r"{\1}", route)
    route = _CONVERTER.sub(r"{\1}", route)
    route = route.replace("^", "").replace("$", "").replace("/?", "").replace("\\", "")
    return "/" + route.rstrip("/")


def _walk(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def _methods(callback: Any, among: Iterable[str]) -> list[str]:
    among = tuple(among)
    actions = getattr(callback, "actions", None)  # a DRF ViewSet: {"get": "list", …}
    if actions:
        return sorted(m.upper() for m in actions if m.upper() in among)
    view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view is None:
        # A plain function may answer anything: it needs entries.
        return [m for m in ("GET", "POST") if m in among]
    allowed = {m.upper() for m in getattr(view, "http_method_names", [])}
    return sorted(m for m in among if m in allowed and hasattr(view, m.lower()))


def api_routes(methods: Iterable[str] = METHODS) -> dict[str, Any]:
    """ "METHOD /api/v1/…" → the view (class or function), for every route and method of the API."""
    routes: dict[str, Any] = {}
    for route, callback in _walk(get_resolver()):
        path = readable(route)
        if not path.startswith("/api/v1/"):
            continue
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None) or callback
        for method in _methods(callback, methods):
            routes[f"{method} {path}"] = view
    return routes


def dotted(view: Any) -> str:
    return f"{view.__module__}.{view.__qualname__}"


def door_routes(prefix: str, methods: Iterable[str] = ("GET", "POST")) -> dict[str, Any]:
    """ "METHOD /path/{param}" → the view, for every route under `prefix` ("" for the
    portal: every path outside /api/ and /admin/; "admin/" for the admin site)."""
    routes: dict[str, Any] = {}
    for route, callback in _walk(get_resolver()):
        path = readable(route)
        if prefix:
            if not path.startswith("/" + prefix):
                continue
        elif path.startswith(("/api/", "/admin", "/static/")) or path in ("/healthz", "/favicon.ico"):
            continue
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None) or callback
        for method in _methods(callback, methods):
            routes[f"{method} {path}"] = view
    return routes
