"""`webhook`: members and sends as JSON batches POSTed to a URL.

    POST <url>
    Content-Type: application/json
    Idempotency-Key: push-42:added:0          (the same on a retry: receivers deduplicate)
    Authorization: Bearer <token>             (when the credentials carry `token`)
    Marketerapi-Signature: t=…,v1=…           (when they carry `signing_secret`; as webhooks)

    {"kind": "members", "operation": "add" | "remove", "destination": "crm-hook",
     "reference": "push-42", "offset": 0, "count": 2, "members": [{"external_id": "u1", …}]}

    {"kind": "send", "destination": …, "reference": …, "offset": 0, "count": 1,
     "properties": {…}, "recipients": [{"external_id": "u1", …}]}

A 2xx accepts the batch; 429 is waited out per Retry-After; 5xx, timeouts and connection
errors count on the breaker; any other 4xx fails the push. The health check POSTs
`{"kind": "ping"}` with `Marketerapi-Test: 1`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from integrations.adapters.base import (
    TIMEOUT_FIELDS,
    Checkpoint,
    ConfigProblem,
    DeliveryResult,
    Field,
    HealthResult,
    HttpAdapter,
    chunks,
    external_id,
    member,
    url_problems,
)
from integrations.adapters.registry import register

SECRET_HEADER_WORDS = ("auth", "token", "key", "secret", "cookie", "password", "signature")


@register
class WebhookAdapter(HttpAdapter):
    name = "webhook"
    title = "Webhook"
    sandbox_allowed = True
    fields = (
        Field("url", str, required=True, help="the receiver's URL, e.g. https://hooks.example.com/audiences"),
        Field("batch_size", int, default=1000, minimum=1, maximum=10_000, help="members or recipients per request"),
        Field("headers", dict, help='extra non-secret headers, e.g. {"X-Team": "growth"}'),
        *TIMEOUT_FIELDS,
    )
    url_fields = ("url",)
    credential_keys = {"token": False, "signing_secret": False}
    primary_credential = "token"
    batch_sizes = {"members": 1000, "recipients": 1000}
    send_channels = ("email", "sms", "push")
    send_batch_size = 1000
    # Each batch carries Idempotency-Key: <reference>:recipients:<offset>.
    send_idempotent = True

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[ConfigProblem]:
        problems = url_problems(config.get("url"), "/url")
        for name, value in (config.get("headers") or {}).items():
            pointer = f"/headers/{name}"
            if any(word in name.lower() for word in SECRET_HEADER_WORDS):
                problems.append(
                    ConfigProblem(
                        pointer,
                        "secret_in_config",
                        f"The header {name!r} looks like a secret; config is shown back to every developer.",
                        "Send a bearer token as `credentials.token` (or `credentials_env`) instead.",
                    )
                )
            elif not isinstance(value, str):
                problems.append(
                    ConfigProblem(pointer, "invalid_type", f"Header {name!r} must be a string.", "Send a string.")
                )
        return problems

    def auth_headers(self) -> dict[str, str]:
        token = self.credentials.get("token")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _post(self, body: dict[str, Any], idempotency_key: str, extra: dict[str, str] | None = None) -> None:
        raw = json.dumps(body, separators=(",", ":"), default=str).encode()
        headers = {
            **{str(k): str(v) for k, v in (self.config.get("headers") or {}).items()},
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            **(extra or {}),
        }
        secret = self.credentials.get("signing_secret")
        if secret:
            from integrations.webhooks.signing import signature_header

            headers["Marketerapi-Signature"] = signature_header(secret, int(time.time()), raw)
        self.request("POST", self.config["url"], content=raw, headers=headers)

    def _batches(
        self, phase: str, items: Sequence[Any], body: dict[str, Any], key: str, result: DeliveryResult, cp: Checkpoint
    ) -> None:
        size = int(self.config["batch_size"])
        for offset, chunk in chunks(items, size, cp.offset(phase)):
            payload = {**body, "reference": self.reference, "offset": offset, "count": len(chunk), key: list(chunk)}
            self._post(payload, f"{self.reference}:{phase}:{offset}")
            result.calls += 1
            result.delivered += len(chunk)
            cp.advance(phase, len(chunk))

    def push_members(
        self, added: Sequence[Any], removed: Sequence[Any], checkpoint: Checkpoint | None = None
    ) -> DeliveryResult:
        cp = checkpoint or Checkpoint()
        result = DeliveryResult()
        common = {"kind": "members", "destination": self.label}
        gone = [{"external_id": external_id(item)} for item in removed]
        self._batches("removed", gone, {**common, "operation": "remove"}, "members", result, cp)
        self._batches("added", [member(m) for m in added], {**common, "operation": "add"}, "members", result, cp)
        return result

    def send(self, batch: dict[str, Any], checkpoint: Checkpoint | None = None) -> DeliveryResult:
        cp = checkpoint or Checkpoint()
        result = DeliveryResult()
        body = {"kind": "send", "destination": self.label, "properties": dict(batch.get("properties") or {})}
        self._batches("recipients", list(batch.get("recipients") or []), body, "recipients", result, cp)
        return result

    def health(self) -> HealthResult:
        def probe(result: HealthResult) -> None:
            self._post(
                {"kind": "ping", "destination": self.label}, f"ping:{time.time():.0f}", {"Marketerapi-Test": "1"}
            )
            result.check("reachable", True, f"{urlsplit(self.config['url']).netloc} accepted a test batch.")

        return self.timed_health(probe)
