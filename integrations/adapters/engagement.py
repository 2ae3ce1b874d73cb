"""`engagement`: a customer-engagement platform's REST API (Braze's contract, VENDORS.md).

- Members added: `POST /users/track` with at most 75 attribute objects per request; each
  object carries the member's fields and attributes and subscribes them to the configured
  subscription group. Rows the vendor could not take come back in a 201's `errors`
  (`{"type", "input_array", "index"}`) while the others are processed: they are reported
  as warnings naming the external id, not as a failure.
- Members removed: `POST /subscription/status/set` with `subscription_state:
  unsubscribed`, at most 50 external ids per request. Never `/users/delete`: leaving an
  audience must not erase the person from the vendor.
- Sends: `POST /campaigns/trigger/send` with at most 50 recipients per request. The vendor
  has no idempotency key; the checkpoint (and the caller's Send rows) keep retries from
  sending a finished batch twice.
- Rate limits: every response's `X-RateLimit-Remaining` / `X-RateLimit-Reset` (epoch
  seconds) are read; when the budget is used up the next call waits for the reset. A 429
  waits until `X-RateLimit-Reset` (Retry-After is not documented for this API), else backs
  off exponentially. A `202 {"message": "queued"}` (maintenance) counts as accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    RateLimited,
    VendorRejected,
    body_json,
    chunks,
    external_id,
    member,
    url_problems,
)
from integrations.adapters.registry import register

TRACK_MAX = 75
SUBSCRIPTION_MAX = 50
TRIGGER_MAX = 50
DEFAULT_ATTRIBUTE_MAP = {"email": "email", "phone": "phone", "first_name": "first_name", "last_name": "last_name"}


@register
class EngagementAdapter(HttpAdapter):
    name = "engagement"
    title = "Engagement platform"
    fields = (
        Field(
            "base_url",
            str,
            required=True,
            help="the REST endpoint of your instance, e.g. https://rest.iad-01.braze.com",
        ),
        Field(
            "subscription_group_id",
            str,
            required=True,
            help="the subscription group members join when added and leave when removed",
        ),
        Field("campaign_id", str, help="the API-triggered campaign used by sends"),
        Field("attribute_map", dict, help='internal field → vendor attribute, e.g. {"first_name": "fname"}'),
        Field("batch_size", int, default=TRACK_MAX, minimum=1, maximum=TRACK_MAX, help="attributes per users/track"),
        *TIMEOUT_FIELDS,
    )
    url_fields = ("base_url",)
    credential_keys = {"api_key": True}
    primary_credential = "api_key"
    batch_sizes = {"users/track": TRACK_MAX, "subscription/status/set": SUBSCRIPTION_MAX, "trigger": TRIGGER_MAX}
    send_channels = ("email", "sms", "push")
    send_batch_size = TRIGGER_MAX

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remaining: int | None = None
        self._reset_at: float | None = None

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[ConfigProblem]:
        problems = url_problems(config.get("base_url"), "/base_url", what="base URL")
        for key, value in (config.get("attribute_map") or {}).items():
            if key not in DEFAULT_ATTRIBUTE_MAP or not isinstance(value, str) or not value:
                problems.append(
                    ConfigProblem(
                        f"/attribute_map/{key}",
                        "invalid_attribute_map",
                        f"attribute_map maps the fields {', '.join(DEFAULT_ATTRIBUTE_MAP)} to attribute names; "
                        f"{key!r} → {value!r} is not such a pair.",
                        'Use e.g. {"first_name": "fname"}; custom attributes pass through under their own names.',
                    )
                )
        return problems

    # -- HTTP conventions --

    def url(self, path: str) -> str:
        return self.config["base_url"].rstrip("/") + path

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.get('api_key', '')}", "Content-Type": "application/json"}

    def after_response(self, response: httpx.Response) -> None:
        remaining, reset = response.headers.get("X-RateLimit-Remaining"), response.headers.get("X-RateLimit-Reset")
        try:
            self._remaining = int(float(remaining)) if remaining is not None else None
            self._reset_at = float(reset) if reset is not None else None
        except ValueError:
            self._remaining = self._reset_at = None

    def _wait_for_reset(self) -> float | None:
        if self._reset_at is None:
            return None
        return max(self._reset_at - base.now(), 0.0)

    def before_call(self) -> None:
        if self._remaining is None or self._remaining > 0:
            return
        wait = self._wait_for_reset()
        self._remaining = None
        if wait is None or wait <= 0:
            return
        if wait > self.max_inline_wait:
            raise RateLimited(
                f"{self.label}'s request budget is used up until its reset in {wait:.0f} s.",
                retry_after=wait,
                hint="Nothing to do: the work resumes when the vendor's limit resets.",
                status=None,
            )
        base.sleep(wait)

    def rate_limit_wait(self, response: httpx.Response, attempt: int) -> float | None:
        wait = self._wait_for_reset()
        # A reset in the past (clock skew) still deserves a short pause.
        return None if wait is None else max(wait, 0.5)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.request("POST", self.url(path), json=body)
        return body_json(response) or {}

    # -- the calls --

    def _attributes(self, item: Any) -> dict[str, Any]:
        row = member(item)
        mapping = {**DEFAULT_ATTRIBUTE_MAP, **(self.config.get("attribute_map") or {})}
        out: dict[str, Any] = dict(row["attributes"])
        for name, attribute in mapping.items():
            if name in row:
                out[attribute] = row[name]
        out["external_id"] = row["external_id"]
        out["subscription_groups"] = [
            {"subscription_group_id": self.config["subscription_group_id"], "subscription_state": "subscribed"}
        ]
        return out

    def push_members(
        self, added: Sequence[Any], removed: Sequence[Any], checkpoint: Checkpoint | None = None
    ) -> DeliveryResult:
        self.require_credentials()
        cp = checkpoint or Checkpoint()
        result = DeliveryResult()
        ids = [external_id(item) for item in removed]
        for _offset, chunk in chunks(ids, SUBSCRIPTION_MAX, cp.offset("removed")):
            self._post(
                "/subscription/status/set",
                {
                    "subscription_group_id": self.config["subscription_group_id"],
                    "subscription_state": "unsubscribed",
                    "external_id": list(chunk),
                },
            )
            result.calls += 1
            result.delivered += len(chunk)
            cp.advance("removed", len(chunk))
        size = min(int(self.config["batch_size"]), TRACK_MAX)
        for _offset, chunk in chunks(list(added), size, cp.offset("added")):
            rows = [self._attributes(item) for item in chunk]
            body = self._post("/users/track", {"attributes": rows})
            result.calls += 1
            rejected = self._row_errors(body, rows, result)
            result.delivered += len(rows) - rejected
            cp.advance("added", len(chunk))
        return result

    def _row_errors(self, body: dict[str, Any], rows: list[dict[str, Any]], result: DeliveryResult) -> int:
        """Report the rows a 201 says were not taken; the others were processed."""
        rejected = 0
        for error in body.get("errors") or []:
            if not isinstance(error, dict):
                result.warn("row_rejected", f"{self.label} reported: {error}")
                continue
            index = error.get("index")
            who = rows[index]["external_id"] if isinstance(index, int) and 0 <= index < len(rows) else None
            rejected += 1
            result.warn(
                "row_rejected",
                f"{self.label} did not take {who or 'a row'}: {error.get('type', 'error')}.",
                external_id=who,
                vendor_error=str(error.get("type", ""))[:200],
            )
        return rejected

    def send(self, batch: dict[str, Any], checkpoint: Checkpoint | None = None) -> DeliveryResult:
        self.require_credentials()
        campaign = self.config.get("campaign_id")
        if not campaign:
            raise ConfigurationError(
                f"{self.label} has no campaign_id to send with.",
                hint="Set config.campaign_id (PATCH /api/v1/destinations/{id}) to an API-triggered campaign.",
            )
        cp = checkpoint or Checkpoint()
        result = DeliveryResult()
        recipients = list(batch.get("recipients") or [])
        for _offset, chunk in chunks(recipients, TRIGGER_MAX, cp.offset("recipients")):
            body = {
                "campaign_id": campaign,
                "trigger_properties": dict(batch.get("properties") or {}),
                "recipients": [
                    {
                        "external_user_id": external_id(r),
                        "trigger_properties": dict((r.get("properties") if isinstance(r, dict) else None) or {}),
                    }
                    for r in chunk
                ],
            }
            answer = self._post("/campaigns/trigger/send", body)
            result.calls += 1
            result.delivered += len(chunk)
            if answer.get("dispatch_id"):
                result.details.setdefault("dispatch_ids", []).append(answer["dispatch_id"])
            cp.advance("recipients", len(chunk))
        return result

    def health(self) -> HealthResult:
        def probe(result: HealthResult) -> None:
            self.require_credentials()
            # An empty users/track changes nothing. A 2xx proves the endpoint and the key; a
            # 400 (the vendor may refuse an empty request) still proves both, a 401/403 does not.
            try:
                self._post("/users/track", {"attributes": []})
            except VendorRejected as exc:
                if exc.status != 400:
                    raise
            result.check("api_key", True, f"{self.label} accepted the API key.")

        return self.timed_health(probe)
