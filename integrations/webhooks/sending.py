"""One signed webhook POST: the HTTP client, the request and what its answer means.

Runs in the delivery's worker threads and touches no database: `send` never raises, it
returns an AttemptResult that integrations/webhooks/delivery.py records. Timeouts and the
thread count are settings (WEBHOOK_CONNECT_TIMEOUT, WEBHOOK_READ_TIMEOUT,
WEBHOOK_CONCURRENCY). Every request goes through a client of integrations/egress.py, one
per outbound policy (sandbox or not; `Clients`): each connection is checked against the
environment's rules at the address actually connected to, redirects are not followed and
the environment's proxies are not used. A refused target is a failed attempt saying why.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from django.conf import settings

from integrations import egress
from integrations.webhooks import signing

logger = logging.getLogger("marketerapi.relay")

USER_AGENT = "marketerapi-webhooks/1.0 (+https://marketerapi.dev/docs/webhooks)"
ERROR_BODY_BYTES = 512


def connect_timeout() -> float:
    return float(settings.WEBHOOK_CONNECT_TIMEOUT)


def read_timeout() -> float:
    return float(settings.WEBHOOK_READ_TIMEOUT)


def concurrency() -> int:
    return int(settings.WEBHOOK_CONCURRENCY)


@dataclass
class Claimed:
    delivery_id: int
    attempt: int
    subscription_id: int
    environment_id: int
    url: str
    secret_encrypted: str
    failing_since: datetime | None
    event_public_id: str
    event_type: str
    body: bytes
    # The subscription's environment is a sandbox: its outbound rules (integrations/egress.py).
    sandbox: bool = False


@dataclass
class AttemptResult:
    claimed: Claimed
    ok: bool
    status_code: int | None = None
    latency_ms: int | None = None
    error: str = ""
    retry_after: float | None = None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def client(policy: egress.Policy = egress.PRODUCTION) -> httpx.Client:
    """A client for webhook requests under `policy` (integrations/egress.py)."""
    return egress.client(
        policy,
        timeout=httpx.Timeout(
            connect=connect_timeout(), read=read_timeout(), write=read_timeout(), pool=read_timeout()
        ),
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=max(concurrency(), 1) * 2, max_keepalive_connections=max(concurrency(), 1)),
    )


class Clients:
    """One client per outbound policy, made on first use and shared by the sending threads.
    Never one client for both: a pooled connection opened under one environment's rules
    must not carry another environment's request."""

    def __init__(self) -> None:
        self._clients: dict[egress.Policy, httpx.Client] = {}
        self._lock = threading.Lock()

    def of(self, claimed: Claimed) -> httpx.Client:
        policy = egress.webhook_policy(sandbox=claimed.sandbox)
        with self._lock:
            if policy not in self._clients:
                self._clients[policy] = client(policy)
            return self._clients[policy]

    def close(self) -> None:
        with self._lock:
            for http in self._clients.values():
                http.close()
            self._clients.clear()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send(claimed: Claimed, secret: str | Exception, http: httpx.Client, now: datetime) -> AttemptResult:
    """One signed POST of a claimed delivery; never raises. Runs in a worker thread and touches no database."""
    if isinstance(secret, Exception):
        return AttemptResult(claimed, ok=False, error=str(secret))
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        signing.SIGNATURE_HEADER: signing.signature_header(secret, timestamp, claimed.body),
        signing.EVENT_ID_HEADER: claimed.event_public_id,
        signing.EVENT_TYPE_HEADER: claimed.event_type,
        signing.ATTEMPT_HEADER: str(claimed.attempt),
    }
    started = time.monotonic()
    try:
        with http.stream("POST", claimed.url, content=claimed.body, headers=headers) as response:
            # Read a little of the body: all of a short one (so the connection is reused),
            # the start of a long one (for the log).
            head = b""
            for chunk in response.iter_bytes():
                head += chunk
                if len(head) >= ERROR_BODY_BYTES:
                    break
        latency = int((time.monotonic() - started) * 1000)
    except egress.EgressRefused as refused:
        return failed(claimed, started, f"Not sent: {refused.message} {refused.hint}")
    except httpx.ConnectTimeout:
        return failed(claimed, started, f"Connect timeout: no connection within {connect_timeout():g} s.")
    except httpx.ReadTimeout:
        return failed(claimed, started, f"Read timeout: no answer within {read_timeout():g} s.")
    except httpx.TimeoutException as exc:
        return failed(claimed, started, f"Timeout: {type(exc).__name__}.")
    except httpx.ConnectError as exc:
        return failed(claimed, started, f"Connection failed: {exc}")
    except httpx.HTTPError as exc:
        return failed(claimed, started, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug must not lose the attempt's record
        logger.exception("webhook send crashed")
        return failed(claimed, started, f"{type(exc).__name__}: {exc}")
    if response.is_success:
        return AttemptResult(claimed, ok=True, status_code=response.status_code, latency_ms=latency)
    text = head[:ERROR_BODY_BYTES].decode("utf-8", "replace").strip()
    if response.is_redirect:
        error = f"HTTP {response.status_code}: redirects are not followed; use the final URL " + (
            f"({response.headers.get('location')})." if response.headers.get("location") else "."
        )
    else:
        error = f"HTTP {response.status_code}" + (f": {text}" if text else "")
    return AttemptResult(
        claimed,
        ok=False,
        status_code=response.status_code,
        latency_ms=latency,
        error=error,
        retry_after=parse_retry_after(response.headers.get("retry-after"), now),
    )


def failed(claimed: Claimed, started: float, error: str) -> AttemptResult:
    return AttemptResult(claimed, ok=False, latency_ms=int((time.monotonic() - started) * 1000), error=error)
