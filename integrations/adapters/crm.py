"""`crm`: rows of a marketing-cloud data extension (Salesforce Marketing Cloud's contract,
VENDORS.md).

- Auth: OAuth client credentials, `POST <auth>/v2/token`. The token is cached per process
  until shortly before it expires and reused by every push of the destination; a REST
  call answered `401 Not Authorized` (an expired or revoked token) fetches a new token
  once and is retried once. Bad credentials (`401 invalid_client` from the token
  endpoint) fail the push without tripping the breaker.
- Upserts: up to `async_threshold` rows go synchronously, 50 rows per
  `POST /hub/v1/dataevents/key:{key}/rowset` (a 400 fails the whole call); larger batches
  go asynchronously, at most 32,000 items per `PUT /data/v1/async/dataextensions/key:{key}/rows`,
  then `GET /data/v1/async/{requestId}/status` is polled until Complete or Error, and
  per-row errors (`…/results?includeDetail=true`) are reported as warnings.
- **Removal model.** The vendor documents no REST delete for rows. Leaving an audience is
  an upsert that sets the membership column (`membership_column`, default `InAudience`)
  to false; joining sets it to true. Sends and automations in the vendor filter on it.
- Sends: `POST /messaging/v1/messageDefinitionSends/key:{definition_key}/send`, one
  recipient per call; per-recipient `messageErrors` are warnings.
- Throttling: 429 with `Retry-After` (errorcode 50100) waits that long; 429 without it
  (errorcode 50200, "temporarily blocked") backs off exponentially, then defers the push.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from integrations.adapters import base
from integrations.adapters.base import (
    TIMEOUT_FIELDS,
    Checkpoint,
    ConfigProblem,
    ConfigurationError,
    DeliveryResult,
    Field,
    HealthResult,
    HttpAdapter,
    ServerFailure,
    VendorRejected,
    body_json,
    chunks,
    external_id,
    member,
    url_problems,
)
from integrations.adapters.registry import register

SYNC_MAX = 50
ASYNC_MAX = 32_000
# Refresh a token this long before the vendor says it expires (clock skew, a slow call).
TOKEN_MARGIN = 60.0
SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
DEFAULT_FIELD_MAP = {"email": "Email", "phone": "Phone", "first_name": "FirstName", "last_name": "LastName"}
UNKNOWN_REQUEST = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class _Token:
    access_token: str
    rest_url: str
    expires_at: float


# Shared by every adapter instance of this process: a token lives about 20 minutes.
_TOKENS: dict[tuple[str, str, str, str], _Token] = {}
_TOKENS_LOCK = threading.Lock()


def forget_tokens() -> None:
    with _TOKENS_LOCK:
        _TOKENS.clear()


@register
class CrmAdapter(HttpAdapter):
    name = "crm"
    title = "CRM data extension"
    fields = (
        Field("subdomain", str, help="your tenant subdomain, e.g. mc563885gzs27c5t9-63k636ttgm"),
        Field(
            "auth_url",
            str,
            help="the auth base URL, instead of subdomain (e.g. https://<sub>.auth.marketingcloudapis.com)",
        ),
        Field("rest_url", str, help="the REST base URL; default: the token's rest_instance_url"),
        Field("account_id", str, help="the business unit (MID) to act in; optional"),
        Field("data_extension_key", str, required=True, help="the external key of the data extension"),
        Field("key_field", str, default="SubscriberKey", help="the primary-key column holding external_id"),
        Field("membership_column", str, default="InAudience", help="the boolean column set true/false"),
        Field("field_map", dict, help='internal field → column, e.g. {"email": "EmailAddress"}'),
        Field("definition_key", str, help="the triggered-send definition used by sends"),
        Field("sync_batch_size", int, default=SYNC_MAX, minimum=1, maximum=SYNC_MAX, help="rows per rowset call"),
        Field("async_batch_size", int, default=ASYNC_MAX, minimum=1, maximum=ASYNC_MAX, help="items per async call"),
        Field("async_threshold", int, default=1000, minimum=0, maximum=10_000_000, help="larger batches go async"),
        Field("poll_interval", (int, float), default=2.0, minimum=0.0, maximum=60, help="seconds between polls"),
        Field("poll_timeout", (int, float), default=300.0, minimum=0.0, maximum=3600, help="seconds to poll at most"),
        *TIMEOUT_FIELDS,
    )
    url_fields = ("auth_url", "rest_url")
    credential_keys = {"client_id": True, "client_secret": True}
    primary_credential = None
    batch_sizes = {"rowset": SYNC_MAX, "async rows": ASYNC_MAX, "triggered send": 1}
    send_channels = ("email",)
    send_batch_size = 50

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fetching_token = False
        self._rest_url: str | None = None

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[ConfigProblem]:
        problems: list[ConfigProblem] = []
        has_sub, has_auth = bool(config.get("subdomain")), bool(config.get("auth_url"))
        if has_sub == has_auth:
            problems.append(
                ConfigProblem(
                    "/subdomain",
                    "subdomain_or_auth_url",
                    "Give exactly one of `subdomain` and `auth_url`.",
                    "Use your tenant's subdomain (the part before .auth.marketingcloudapis.com).",
                )
            )
        if has_sub and not SUBDOMAIN.match(config["subdomain"]):
            problems.append(
                ConfigProblem(
                    "/subdomain",
                    "invalid_subdomain",
                    "The subdomain has lower-case letters, digits and '-' only.",
                    "Copy it from the API integration's auth base URL.",
                )
            )
        if has_auth:
            problems.extend(url_problems(config["auth_url"], "/auth_url", what="auth URL"))
        if config.get("rest_url"):
            problems.extend(url_problems(config["rest_url"], "/rest_url", what="REST URL"))
        for key, value in (config.get("field_map") or {}).items():
            if key not in DEFAULT_FIELD_MAP or not isinstance(value, str) or not value:
                problems.append(
                    ConfigProblem(
                        f"/field_map/{key}",
                        "invalid_field_map",
                        f"field_map maps {', '.join(DEFAULT_FIELD_MAP)} to column names; {key!r} → {value!r} is not.",
                        'Use e.g. {"email": "EmailAddress"}; attributes pass through under their own names.',
                    )
                )
        return problems

    # -- auth --

    @property
    def auth_base(self) -> str:
        if self.config.get("auth_url"):
            return str(self.config["auth_url"]).rstrip("/")
        return f"https://{self.config['subdomain']}.auth.marketingcloudapis.com"

    def _token_key(self) -> tuple[str, str, str, str]:
        secret = hashlib.sha256(str(self.credentials.get("client_secret", "")).encode()).hexdigest()
        return (
            self.auth_base,
            str(self.credentials.get("client_id", "")),
            str(self.config.get("account_id", "")),
            secret,
        )

    def token(self, *, fresh: bool = False) -> _Token:
        key = self._token_key()
        with _TOKENS_LOCK:
            cached = _TOKENS.get(key)
        if cached is not None and not fresh and cached.expires_at > time.time():
            return cached
        self.require_credentials()
        body = {
            "grant_type": "client_credentials",
            "client_id": self.credentials["client_id"],
            "client_secret": self.credentials["client_secret"],
        }
        if self.config.get("account_id"):
            body["account_id"] = self.config["account_id"]
        self._fetching_token = True
        try:
            response = self.request("POST", f"{self.auth_base}/v2/token", json=body, auth=False)
        finally:
            self._fetching_token = False
        data = body_json(response) or {}
        if not data.get("access_token"):
            raise ServerFailure(f"{self.label}'s token endpoint answered without an access token.")
        lifetime = float(data.get("expires_in") or 0)
        margin = TOKEN_MARGIN if lifetime > 2 * TOKEN_MARGIN else lifetime / 2
        rest = str(self.config.get("rest_url") or data.get("rest_instance_url") or "").rstrip("/")
        if not rest:
            raise ConfigurationError(
                f"{self.label}'s token carries no rest_instance_url and config has no rest_url.",
                hint="Set config.rest_url to your tenant's REST base URL.",
            )
        token = _Token(str(data["access_token"]), rest, time.time() + lifetime - margin)
        with _TOKENS_LOCK:
            _TOKENS[key] = token
        return token

    def forget_token(self) -> None:
        with _TOKENS_LOCK:
            _TOKENS.pop(self._token_key(), None)

    def forget_session(self) -> None:
        self.forget_token()

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token().access_token}"}

    def on_unauthorized(self, response: httpx.Response) -> bool:
        if self._fetching_token:
            return False  # bad credentials: a new token would not help
        self.forget_token()
        return True

    def rejection_message(self, response: httpx.Response) -> str:
        body = body_json(response)
        if isinstance(body, dict):
            text = str(body.get("message") or body.get("error_description") or body.get("error") or "")
            if body.get("errorcode") not in (None, 0, "0"):
                text += f" (errorcode {body['errorcode']})"
            extra = body.get("additionalErrors") or []
            if extra and isinstance(extra, list):
                first = extra[0]
                text += f"; {first.get('message', first) if isinstance(first, dict) else first}"
            return text
        return super().rejection_message(response)

    def rejection_hint(self, status: int) -> str:
        if status == 401 and self._fetching_token:
            return (
                f"{self.label} refused the client id/secret: check the API integration and send the right ones with "
                "PATCH /api/v1/destinations/{id} (`credentials`)."
            )
        return super().rejection_hint(status)

    def rate_limit_wait(self, response: httpx.Response, attempt: int) -> float | None:
        header = base.retry_after_seconds(response)
        if header is not None:
            return header
        body = body_json(response)
        if isinstance(body, dict) and isinstance(body.get("retryAfter"), (int, float)):
            return float(body["retryAfter"])
        return None  # 50200 "temporarily blocked": back off

    # -- rows --

    def rest(self, path: str) -> str:
        # The REST host does not change with the token: look it up once, not per call.
        if self._rest_url is None:
            self._rest_url = self.token().rest_url
        return self._rest_url + path

    def _values(self, item: Any, in_audience: bool) -> dict[str, Any]:
        row = member(item)
        mapping = {**DEFAULT_FIELD_MAP, **(self.config.get("field_map") or {})}
        values: dict[str, Any] = dict(row["attributes"])
        for name, column in mapping.items():
            if name in row:
                values[column] = row[name]
        values[self.config["membership_column"]] = in_audience
        return values

    def _upsert(
        self, phase: str, rows: list[tuple[str, dict[str, Any]]], result: DeliveryResult, cp: Checkpoint
    ) -> None:
        start = cp.offset(phase)
        key = self.config["data_extension_key"]
        key_field = self.config["key_field"]
        if len(rows) - start > int(self.config["async_threshold"]):
            for _offset, chunk in chunks(rows, int(self.config["async_batch_size"]), start):
                items = [{key_field: ident, **values} for ident, values in chunk]
                response = self.request(
                    "PUT", self.rest(f"/data/v1/async/dataextensions/key:{key}/rows"), json={"items": items}
                )
                result.calls += 1
                request_id = str((body_json(response) or {}).get("requestId") or "")
                rejected = self._await_async(request_id, result) if request_id else 0
                result.delivered += len(chunk) - rejected
                cp.advance(phase, len(chunk))
            return
        for _offset, chunk in chunks(rows, int(self.config["sync_batch_size"]), start):
            body = [{"keys": {key_field: ident}, "values": values} for ident, values in chunk]
            self.request("POST", self.rest(f"/hub/v1/dataevents/key:{key}/rowset"), json=body)
            result.calls += 1
            result.delivered += len(chunk)
            cp.advance(phase, len(chunk))

    def _await_async(self, request_id: str, result: DeliveryResult) -> int:
        """Poll an async upsert to its end; returns how many rows the vendor rejected."""
        interval = float(self.config["poll_interval"])
        polls = max(1, math.ceil(float(self.config["poll_timeout"]) / interval)) if interval > 0 else 1000
        for _ in range(polls):
            data = body_json(self.request("GET", self.rest(f"/data/v1/async/{request_id}/status"))) or {}
            status: dict[str, Any] = data["status"] if isinstance(data.get("status"), dict) else {}
            state = str(status.get("requestStatus", ""))
            if not status:
                codes = [
                    str(m.get("resultCode", m)) if isinstance(m, dict) else str(m)
                    for m in data.get("resultMessages") or []
                ]
                result.warn(
                    "async_status_unknown",
                    f"{self.label} no longer knows upsert request {request_id} ({', '.join(codes) or 'no status'}); "
                    "its rows may need a re-send (replaying the push is safe: rows are upserted).",
                    request_id=request_id,
                )
                return 0
            if state == "Pending" or state not in ("Complete", "Error"):
                base.sleep(interval)
                continue
            if state == "Complete" and not status.get("hasErrors"):
                return 0
            rejected = self._async_row_errors(request_id, result)
            if state == "Error" and not rejected:
                raise VendorRejected(
                    f"{self.label} failed the upsert request {request_id} without naming a row.",
                    hint="Check the data extension's columns against the rows sent (field_map, key_field, "
                    "membership_column), then replay the push from the dead-letter list.",
                )
            return rejected
        result.warn(
            "async_still_running",
            f"{self.label} was still processing upsert request {request_id} after {self.config['poll_timeout']} s; "
            "its outcome was not checked.",
            request_id=request_id,
        )
        return 0

    def _async_row_errors(self, request_id: str, result: DeliveryResult) -> int:
        data = (
            body_json(
                self.request("GET", self.rest(f"/data/v1/async/{request_id}/results"), params={"includeDetail": "true"})
            )
            or {}
        )
        rejected = 0
        for item in data.get("items") or []:
            if not isinstance(item, dict) or str(item.get("status", "")).lower() != "error":
                continue
            rejected += 1
            who = item.get(self.config["key_field"]) or (item.get("keys") or {}).get(self.config["key_field"])
            result.warn(
                "row_rejected",
                f"{self.label} did not take {who or 'a row'}: "
                f"{item.get('errorCode', '')} {item.get('message', '')}".strip(),
                external_id=who,
                vendor_error=str(item.get("errorCode", ""))[:200],
            )
        return rejected

    def push_members(
        self, added: Sequence[Any], removed: Sequence[Any], checkpoint: Checkpoint | None = None
    ) -> DeliveryResult:
        self.require_credentials()
        cp = checkpoint or Checkpoint()
        result = DeliveryResult()
        gone = [(external_id(item), {self.config["membership_column"]: False}) for item in removed]
        self._upsert("removed", gone, result, cp)
        joined = [(external_id(item), self._values(item, True)) for item in added]
        self._upsert("added", joined, result, cp)
        return result

    def send(self, batch: dict[str, Any], checkpoint: Checkpoint | None = None) -> DeliveryResult:
        self.require_credentials()
        definition = self.config.get("definition_key")
        if not definition:
            raise ConfigurationError(
                f"{self.label} has no definition_key to send with.",
                hint="Set config.definition_key to a triggered-send definition's external key.",
            )
        cp = checkpoint or Checkpoint()
        result = DeliveryResult()
        shared = dict(batch.get("properties") or {})
        recipients = list(batch.get("recipients") or [])
        for _offset, chunk in chunks(recipients, 1, cp.offset("recipients")):
            recipient = member(chunk[0])
            props = chunk[0].get("properties") if isinstance(chunk[0], dict) else None
            body = {
                "To": {
                    "Address": recipient.get("email", ""),
                    "SubscriberKey": recipient["external_id"],
                    "ContactAttributes": {"SubscriberAttributes": {**shared, **dict(props or {})}},
                },
                "Options": {"RequestType": "ASYNC"},
            }
            data = (
                body_json(
                    self.request(
                        "POST", self.rest(f"/messaging/v1/messageDefinitionSends/key:{definition}/send"), json=body
                    )
                )
                or {}
            )
            result.calls += 1
            failed = False
            for answer in data.get("responses") or []:
                if isinstance(answer, dict) and (answer.get("hasErrors") or answer.get("messageErrors")):
                    failed = True
                    errors = answer.get("messageErrors") or []
                    text = "; ".join(
                        str(e.get("messageErrorStatus", e)) if isinstance(e, dict) else str(e) for e in errors
                    )
                    result.warn(
                        "row_rejected",
                        f"{self.label} did not queue the send to {recipient['external_id']}: {text or 'error'}.",
                        external_id=recipient["external_id"],
                    )
            result.delivered += 0 if failed else 1
            cp.advance("recipients", 1)
        return result

    def health(self) -> HealthResult:
        def probe(result: HealthResult) -> None:
            token = self.token(fresh=True)
            result.check("credentials", True, f"{self.label} issued a token for the client id.")
            # An unknown request id still answers 200: a cheap call that proves the REST host and the token.
            self.request("GET", token.rest_url + f"/data/v1/async/{UNKNOWN_REQUEST}/status")
            result.check("rest", True, "The REST endpoint accepted the token.")

        return self.timed_health(probe)
