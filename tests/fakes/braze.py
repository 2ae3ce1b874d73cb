"""A fake Braze REST API, to the contract in /work/shared/design/VENDORS.md:

- `Authorization: Bearer <REST API key>`; a wrong key is `401 {"message": "Invalid API key"}`.
- every response carries X-RateLimit-Limit / -Remaining / -Reset (epoch seconds);
  `rate_limit(n)` answers the next n calls `429 {"message": "Rate Limited"}` with no
  Retry-After (not documented for this API) and the reset a little ahead.
- `POST /users/track`: at most 75 objects per array (more: 400 "Max Input Length
  Exceeded"); rows it cannot take (an email without '@', an id in `bad_ids`) come back in
  a 201's `errors` (`{"type", "input_array", "index"}`) while the others are processed.
- `POST /subscription/status/set`: at most 50 external ids.
- `POST /campaigns/trigger/send`: at most 50 recipients; an unknown campaign is 400
  "Invalid Campaign ID"; no recipients is 400 "No Recipients".
- `POST /users/delete` is recorded (the adapter must never call it).
- `maintenance = True` answers `202 {"message": "queued"}`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.fakes.server import FakeServer, Recorded

TRACK_MAX = 75
IDS_MAX = 50


class FakeBraze(FakeServer):
    def __init__(self, api_key: str = "braze-rest-key-123", campaigns: tuple[str, ...] = ("c-123",)) -> None:
        super().__init__()
        self.api_key = api_key
        self.campaigns = set(campaigns)
        self.users: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, str]] = {}
        self.dispatched: list[dict[str, Any]] = []
        self.bad_ids: set[str] = set()
        self.limit = 3000
        self.remaining = 3000
        self.reset_in = 2.0
        self.maintenance = False
        self._throttle = 0

    def rate_limit(self, times: int = 1, reset_in: float = 2.0) -> None:
        self._throttle += times
        self.reset_in = reset_in

    def decorate(self, headers: dict[str, str]) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(int(time.time() + self.reset_in + 0.999)),
            **headers,
        }

    def handle(self, request: Recorded) -> tuple[int, dict[str, str], Any]:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, {"message": "Invalid API key"}
        if self._throttle > 0:
            self._throttle -= 1
            return 429, {}, {"message": "Rate Limited"}
        self.remaining -= 1
        if self.maintenance:
            return 202, {}, {"message": "queued"}
        body = request.json if isinstance(request.json, dict) else {}
        if request.method != "POST":
            return 404, {}, {"message": "Not Found"}
        if request.path == "/users/track":
            return self._track(body)
        if request.path == "/subscription/status/set":
            return self._subscription(body)
        if request.path == "/campaigns/trigger/send":
            return self._trigger(body)
        if request.path == "/users/delete":
            return 201, {}, {"message": "success", "deleted": len(body.get("external_ids") or [])}
        return 404, {}, {"message": "Not Found"}

    def _track(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        for name in ("attributes", "events", "purchases"):
            if len(body.get(name) or []) > TRACK_MAX:
                return 400, {}, {"message": "Max Input Length Exceeded", "errors": [f"{name}: more than {TRACK_MAX}"]}
        errors = []
        processed = 0
        for index, row in enumerate(body.get("attributes") or []):
            ident = str(row.get("external_id", ""))
            email = row.get("email")
            if ident in self.bad_ids or (email is not None and "@" not in str(email)):
                errors.append({"type": "'email' is not a valid email", "input_array": "attributes", "index": index})
                continue
            self.users.setdefault(ident, {}).update(row)
            for group in row.get("subscription_groups") or []:
                self.subscriptions.setdefault(group["subscription_group_id"], {})[ident] = group["subscription_state"]
            processed += 1
        answer: dict[str, Any] = {"message": "success", "attributes_processed": processed}
        if errors:
            answer["errors"] = errors
        return 201, {}, answer

    def _subscription(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        ids = body.get("external_id") or []
        if isinstance(ids, str):
            ids = [ids]
        if len(ids) > IDS_MAX:
            return 400, {}, {"message": "Max Input Length Exceeded", "errors": [f"more than {IDS_MAX} ids"]}
        state = body.get("subscription_state")
        if state not in ("subscribed", "unsubscribed") or not body.get("subscription_group_id"):
            return 400, {}, {"message": "Invalid subscription_state or subscription_group_id"}
        for ident in ids:
            self.subscriptions.setdefault(body["subscription_group_id"], {})[str(ident)] = state
        return 201, {}, {"message": "success"}

    def _trigger(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if body.get("campaign_id") not in self.campaigns:
            return 400, {}, {"message": "Invalid Campaign ID"}
        recipients = body.get("recipients") or []
        if not recipients:
            return 400, {}, {"message": "No Recipients"}
        if len(recipients) > IDS_MAX:
            return 400, {}, {"message": "Max Input Length Exceeded"}
        self.dispatched.append(body)
        return 201, {}, {"dispatch_id": uuid.uuid4().hex, "message": "success"}
