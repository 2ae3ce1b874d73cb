"""The exact requests an adapter makes for a call, recorded instead of sent: the payload
preview (POST /api/v1/destinations/{id}/preview, campaigns/preview.py).

The adapter is the one that sends — same class, same config, same code path — with its
HTTP client swapped for a transport that records each request and answers what the
vendor answers on success (file adapters: the file writes are recorded instead). So the
preview is what a vendor would receive, by construction, not a second renderer. Secrets
are redacted: the Authorization header and any header named like a secret, and every
credential value wherever it appears (URL, headers, body).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from integrations import adapters
from integrations.adapters.webhook import SECRET_HEADER_WORDS
from integrations.destinations import credentials as credentials_store
from integrations.destinations.credentials import REDACTED
from integrations.models import Destination

# What the recording transport answers: enough for every adapter to carry on as on success.
# A token endpoint's rest_instance_url is not known before a real call: the preview says so.
PLACEHOLDER_REST_URL = "https://rest-instance-url.invalid"
_OK = {"message": "success", "responses": [], "dispatch_id": "preview", "requestId": "preview"}
_TOKEN = {
    "access_token": "preview-token",
    "token_type": "Bearer",
    "expires_in": 1200,
    "rest_instance_url": PLACEHOLDER_REST_URL + "/",
}


class RecordingTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = _TOKEN if request.url.path.endswith("/v2/token") else _OK
        return httpx.Response(200, json=body, request=request)


def _redacted_headers(headers: httpx.Headers | dict[str, str], secrets: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in ("host", "content-length", "accept", "accept-encoding", "connection", "user-agent"):
            continue
        if any(word in lower for word in SECRET_HEADER_WORDS):
            scheme = value.split(" ", 1)[0] if " " in value else ""
            out[name] = f"{scheme} {REDACTED}".strip()
        else:
            out[name] = credentials_store.redact(value, secrets)
    return out


def _body(raw: bytes, secrets: dict[str, Any]) -> Any:
    text = credentials_store.redact(raw.decode("utf-8", "replace"), secrets)
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:  # JSON lines (a file drop): one object per line
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return text


def capture(destination: Destination, call: Callable[[adapters.Adapter], Any], *, reference: str) -> list[dict]:
    """Run `call(adapter)` against a recording transport; the requests it made, redacted."""
    cls = adapters.get(destination.adapter)
    secrets = credentials_store.destination_credentials(destination, cls.primary_credential if cls else None)
    adapter = adapters.build(destination, credentials=secrets, reference=reference)
    transport = RecordingTransport()
    written: list[tuple[Path, bytes]] = []
    if isinstance(adapter, adapters.base.HttpAdapter):
        adapter._client = httpx.Client(transport=transport, timeout=adapter.timeout)
    if hasattr(adapter, "write_atomic"):
        directory = Path(str(adapter.config.get("directory", "")))

        def record(name: str, data: bytes) -> Path:
            written.append((directory / name, data))
            return directory / name

        adapter.write_atomic = record  # type: ignore[attr-defined]
    try:
        call(adapter)
    finally:
        adapter.forget_session()
        adapter.close()
    requests = [
        {
            "method": request.method,
            "url": credentials_store.redact(str(request.url), secrets),
            "headers": _redacted_headers(request.headers, secrets),
            "body": _body(request.content, secrets),
        }
        for request in transport.requests
    ]
    requests += [
        {"method": "WRITE", "url": f"file://{path}", "headers": {}, "body": _body(data, secrets)}
        for path, data in written
    ]
    return requests
