"""A fake Salesforce Marketing Cloud, to the contract in /work/shared/design/VENDORS.md.
One server plays both the auth host and the REST host (the token's rest_instance_url
points back at it).

- `POST /v2/token` (client credentials) → access_token, expires_in, rest_instance_url;
  bad credentials: `401 {"error": "invalid_client", …}`. `expire_tokens()` makes every
  issued token stale: REST calls then get `401 {"message": "Not Authorized", "errorcode": 0}`.
- `POST /hub/v1/dataevents/key:{key}/rowset` → 200 echoing the rows; a row with the value
  "BAD" in it fails the whole call with 400 and `additionalErrors`; over 5 MB: 400.
- `PUT /data/v1/async/dataextensions/key:{key}/rows` `{"items": [...]}` → 202 `{"requestId",
  "resultMessages": []}`; more than 32,000 items: 400. Its status is `Pending` for
  `pending_polls` polls, then `Complete` (hasErrors when a row's key is in `bad_keys`);
  an unknown id answers 200 with `resultMessages` naming AsyncRequestStatusNotFound;
  `…/results?includeDetail=true` lists the rows with their status.
- `POST /messaging/v1/messageDefinitionSends/key:{key}/send` → 202, one recipient; an
  address without '@' has `messageErrors`.
- `throttle("retry_after")`: 429 errorcode 50100 with `Retry-After: 5` and `retryAfter: 5`;
  `throttle("blocked")`: 429 errorcode 50200 "Your requests are temporarily blocked.",
  no Retry-After.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any

from tests.fakes.server import FakeServer, Recorded

SYNC_MAX_BYTES = 5 * 1024 * 1024
ASYNC_MAX = 32_000
DOCS = "https://developer.salesforce.com/docs/marketing/marketing-cloud/references/mc_rest_errors"
ROWSET = re.compile(r"^/hub/v1/dataevents/key:(?P<key>[^/]+)/rowset$")
ASYNC_ROWS = re.compile(r"^/data/v1/async/dataextensions/key:(?P<key>[^/]+)/rows$")
ASYNC_STATUS = re.compile(r"^/data/v1/async/(?P<id>[^/]+)/status$")
ASYNC_RESULTS = re.compile(r"^/data/v1/async/(?P<id>[^/]+)/results$")
SEND = re.compile(r"^/messaging/v1/messageDefinitionSends/key:(?P<key>[^/]+)/send$")


class FakeSFMC(FakeServer):
    def __init__(
        self,
        client_id: str = "sfmc-client-id",
        client_secret: str = "sfmc-client-secret-xyz",  # noqa: S107  (a fake)
        key_field: str = "SubscriberKey",
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.key_field = key_field
        self.expires_in = 1079
        # What tokens name as the REST host (default: this server).
        self.rest_instance_url: str | None = None
        self.pending_polls = 1
        self.valid_tokens: set[str] = set()
        self.tokens_issued = 0
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        self.bad_keys: set[str] = set()
        self.async_requests: dict[str, dict[str, Any]] = {}
        self.sends: list[dict[str, Any]] = []
        self._throttles: list[str] = []
        self._state_lock = threading.Lock()

    # -- scripting --

    def expire_tokens(self) -> None:
        with self._state_lock:
            self.valid_tokens.clear()

    def throttle(self, kind: str = "retry_after", times: int = 1) -> None:
        with self._state_lock:
            self._throttles.extend([kind] * times)

    # -- handling --

    def handle(self, request: Recorded) -> tuple[int, dict[str, str], Any]:
        with self._state_lock:
            throttle = self._throttles.pop(0) if self._throttles else None
        if throttle == "retry_after":
            body = {"message": "Rate limit exceeded", "errorcode": 50100, "documentation": DOCS, "retryAfter": 5}
            return 429, {"Retry-After": "5"}, body
        if throttle == "blocked":
            return (
                429,
                {},
                {"message": "Your requests are temporarily blocked.", "errorcode": 50200, "documentation": DOCS},
            )
        if request.path == "/v2/token" and request.method == "POST":
            return self._token(request.json or {})
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        with self._state_lock:
            known = token in self.valid_tokens
        if not known:
            return 401, {}, {"message": "Not Authorized", "errorcode": 0, "documentation": DOCS}
        path = request.path
        if (m := ROWSET.match(path)) and request.method == "POST":
            return self._rowset(m["key"], request)
        if (m := ASYNC_ROWS.match(path)) and request.method == "PUT":
            return self._async_rows(m["key"], request.json or {})
        if (m := ASYNC_STATUS.match(path)) and request.method == "GET":
            return self._async_status(m["id"])
        if (m := ASYNC_RESULTS.match(path)) and request.method == "GET":
            return self._async_results(m["id"])
        if (m := SEND.match(path)) and request.method == "POST":
            return self._send(m["key"], request.json or {})
        return 404, {}, {"message": "Not Found", "errorcode": 404, "documentation": DOCS}

    def _token(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if (
            body.get("grant_type") != "client_credentials"
            or body.get("client_id") != self.client_id
            or body.get("client_secret") != self.client_secret
        ):
            return 401, {}, {"error": "invalid_client", "error_description": "Client authentication failed."}
        token = f"tok-{uuid.uuid4().hex[:12]}"
        with self._state_lock:
            self.valid_tokens.add(token)
            self.tokens_issued += 1
        return (
            200,
            {},
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "scope": "data_extensions_write",
                "soap_instance_url": self.url + "/",
                "rest_instance_url": self.rest_instance_url or self.url + "/",
            },
        )

    def _upsert(self, key: str, ident: str, values: dict[str, Any]) -> None:
        with self._state_lock:
            self.rows.setdefault(key, {}).setdefault(ident, {}).update(values)

    def _rowset(self, key: str, request: Recorded) -> tuple[int, dict[str, str], Any]:
        if len(request.body) > SYNC_MAX_BYTES:
            return 400, {}, {"message": "Payload too large", "errorcode": 10000, "documentation": DOCS}
        rows = request.json if isinstance(request.json, list) else []
        bad = [r for r in rows if "BAD" in json.dumps(r)]
        if bad:
            return (
                400,
                {},
                {
                    "message": "Unable to save rows for data extension ID " + key,
                    "errorcode": 10000,
                    "documentation": DOCS,
                    "additionalErrors": [{"message": "The value for column Email is not valid.", "errorcode": 10006}],
                },
            )
        for row in rows:
            self._upsert(key, str(row["keys"][self.key_field]), {**row["keys"], **row.get("values", {})})
        return 200, {}, rows

    def _async_rows(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        items = body.get("items") or []
        if len(items) > ASYNC_MAX:
            return 400, {}, {"message": f"More than {ASYNC_MAX} items", "errorcode": 10000, "documentation": DOCS}
        request_id = str(uuid.uuid4())
        results = []
        for item in items:
            ident = str(item.get(self.key_field))
            if ident in self.bad_keys:
                results.append(
                    {"status": "Error", "errorCode": "InvalidValue", "message": "Invalid email", "key": ident}
                )
                continue
            self._upsert(key, ident, item)
            results.append({"status": "OK", "key": ident})
        with self._state_lock:
            self.async_requests[request_id] = {"polls": 0, "results": results, "size": len(items)}
        return 202, {}, {"requestId": request_id, "resultMessages": []}

    def _async_status(self, request_id: str) -> tuple[int, dict[str, str], Any]:
        with self._state_lock:
            entry = self.async_requests.get(request_id)
            if entry is None:
                return (
                    200,
                    {},
                    {
                        "requestId": request_id,
                        "resultMessages": [
                            {
                                "resultType": "Error",
                                "resultCode": "AsyncRequestStatusNotFound",
                                "message": "No status found for this request id.",
                            }
                        ],
                    },
                )
            entry["polls"] += 1
            pending = entry["polls"] <= self.pending_polls
        has_errors = any(r["status"] == "Error" for r in entry["results"])
        status = "Pending" if pending else "Complete"
        return 200, {}, {"requestId": request_id, "status": {"requestStatus": status, "hasErrors": has_errors}}

    def _async_results(self, request_id: str) -> tuple[int, dict[str, str], Any]:
        entry = self.async_requests.get(request_id)
        if entry is None:
            return 200, {}, {"items": [], "resultMessages": [{"resultCode": "AsyncRequestStatusNotFound"}]}
        items = [{**r, self.key_field: r.get("key")} for r in entry["results"]]
        return 200, {}, {"page": 1, "pageSize": len(items), "count": len(items), "items": items}

    def _send(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        to = body.get("To") or {}
        self.sends.append({"key": key, **body})
        answer: dict[str, Any] = {"recipientSendId": uuid.uuid4().hex, "hasErrors": False, "messages": ["Queued"]}
        if "@" not in str(to.get("Address", "")):
            answer = {
                "recipientSendId": uuid.uuid4().hex,
                "hasErrors": True,
                "messageErrors": [{"messageErrorCode": 109, "messageErrorStatus": "Invalid email address"}],
            }
        return 202, {}, {"requestId": str(uuid.uuid4()), "responses": [answer]}
