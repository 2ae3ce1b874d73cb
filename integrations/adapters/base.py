"""The one adapter interface, and what every adapter shares.

An adapter speaks one vendor's API behind four calls; nothing outside
integrations/adapters/ names a vendor:

    validate_config(config) -> [ConfigProblem]      (class method: before anything is stored)
    push_members(added, removed, checkpoint) -> DeliveryResult
    send(batch, checkpoint) -> DeliveryResult
    health() -> HealthResult

The internal contract they translate:

- a member added: `{"external_id": "u1", "email": "a@x.test", "phone": …, "first_name": …,
  "last_name": …, "attributes": {…}}` (only `external_id` is required);
- a member removed: its external id, or a dict with `external_id`;
- a send batch: `{"recipients": [{"external_id": "u1", "email": …, "properties": {…}}],
  "properties": {…}}`.

Failures are classified here, once, because the circuit breaker and the push machinery
act on the class, not on the vendor:

    ServerFailure   5xx, timeout, connection error   counts on the breaker; the push is deferred
    CircuitOpen     the breaker refuses the call     the push is deferred until the cool-down ends
    RateLimited     429 beyond what we wait inline   the push is deferred until the vendor's reset
    VendorRejected  any other 4xx                    never trips the breaker; the push fails
    ConfigurationError  missing credentials, …       never trips the breaker; the push fails

Every outbound call has explicit connect and read timeouts. Work is done in fixed-size
batches and each finished batch is recorded on a Checkpoint, so a deferred or killed push
resumes after the last delivered batch instead of starting over.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from integrations import egress
from integrations.destinations.breakers import OPEN, Breaker, Snapshot
from integrations.destinations.credentials import redact

logger = logging.getLogger("marketerapi.adapters")

DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 15.0
# A connection test answers a person's request: no call of it waits longer than this.
PROBE_TIMEOUT = 10.0
# A failed call (5xx, timeout, connection error) is tried this many more times, after
# SERVER_BACKOFF · 2^n seconds; each failure counts on the breaker.
SERVER_RETRIES = 2
SERVER_BACKOFF = 0.5
# A 429 is waited out inline when the vendor asks for at most this long; a longer wait
# defers the push instead of holding a worker.
MAX_INLINE_WAIT = 30.0
RATE_LIMIT_RETRIES = 4
RATE_LIMIT_BACKOFF = 1.0
# When a vendor asks for a longer wait than we hold a worker for, or names none, the push
# is deferred by this long.
DEFAULT_DEFER_SECONDS = 60.0
ERROR_TEXT = 300
MAX_WARNINGS = 50
USER_AGENT = "marketerapi-destinations/1.0"


def sleep(seconds: float) -> None:
    """Every wait of the adapters goes through here (tests replace it)."""
    if seconds > 0:
        time.sleep(seconds)


def now() -> float:
    return time.time()


# --- results and failures -----------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One problem of a configuration; `pointer` is relative to the config object."""

    pointer: str
    code: str
    message: str
    hint: str

    def as_error(self, prefix: str = "/config") -> dict[str, str]:
        return {"pointer": prefix + self.pointer, "code": self.code, "message": self.message, "hint": self.hint}


@dataclass
class DeliveryResult:
    """What one push_members or send did: items accepted, calls made, non-fatal warnings."""

    delivered: int = 0
    calls: int = 0
    warnings: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def warn(self, code: str, message: str, **extra: Any) -> None:
        self.rejected += 1 if code == "row_rejected" else 0
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append({"code": code, "message": message, **extra})

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "calls": self.calls,
            "rejected": self.rejected,
            "warnings": self.warnings,
            **self.details,
        }


@dataclass
class HealthResult:
    ok: bool
    message: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: int = 0

    def check(self, name: str, ok: bool, message: str) -> None:
        self.checks.append({"name": name, "ok": ok, "message": message})


class AdapterError(Exception):
    """A push or call that did not go through. `retryable` decides defer versus fail."""

    retryable = False
    code = "destination_error"

    def __init__(self, message: str, *, hint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status


class ServerFailure(AdapterError):
    retryable = True
    code = "destination_unavailable"


class CircuitOpen(AdapterError):
    retryable = True
    code = "destination_circuit_open"

    def __init__(self, message: str, *, snapshot: Snapshot, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.snapshot = snapshot


class RateLimited(AdapterError):
    retryable = True
    code = "destination_rate_limited"

    def __init__(self, message: str, *, retry_after: float, hint: str = "", status: int | None = 429) -> None:
        super().__init__(message, hint=hint, status=status)
        self.retry_after = retry_after


class VendorRejected(AdapterError):
    code = "destination_rejected"


class ConfigurationError(AdapterError):
    code = "destination_misconfigured"


class TargetRefused(ConfigurationError):
    """The call would go where the environment's outbound rules forbid (integrations/egress.py):
    nothing was sent; never retried, never counted on the breaker."""

    code = "destination_target_refused"


# --- checkpoints ----------------------------------------------------------------------


class Checkpoint:
    """How far a push got: items delivered per phase (`added`, `removed`, `recipients`).

    `on_advance` is called after each delivered batch with the new totals, so the caller
    can persist them (destinations/pushing.py stores them on the push's payload).
    """

    def __init__(
        self, done: dict[str, int] | None = None, on_advance: Callable[[dict[str, int]], None] | None = None
    ) -> None:
        self.done: dict[str, int] = dict(done or {})
        self._on_advance = on_advance

    def offset(self, phase: str) -> int:
        return int(self.done.get(phase, 0))

    def advance(self, phase: str, count: int) -> None:
        self.done[phase] = self.offset(phase) + count
        if self._on_advance is not None:
            self._on_advance(dict(self.done))


def chunks(items: Sequence[Any], size: int, start: int = 0) -> Iterable[tuple[int, Sequence[Any]]]:
    for offset in range(start, len(items), size):
        yield offset, items[offset : offset + size]


# --- the internal member contract -------------------------------------------------------

MEMBER_FIELDS = ("email", "phone", "first_name", "last_name")


def external_id(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("external_id", ""))
    return str(item)


def member(item: Any) -> dict[str, Any]:
    """A member added, normalised: external_id, the known fields present, attributes."""
    if not isinstance(item, dict):
        return {"external_id": str(item), "attributes": {}}
    out: dict[str, Any] = {"external_id": str(item.get("external_id", ""))}
    for name in MEMBER_FIELDS:
        if item.get(name) not in (None, ""):
            out[name] = item[name]
    out["attributes"] = dict(item.get("attributes") or {})
    return out


# --- configuration checks ---------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One key of an adapter's config: its type, default and limits (also the docs' table)."""

    name: str
    kind: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


TIMEOUT_FIELDS = (
    Field("connect_timeout", (int, float), default=DEFAULT_CONNECT_TIMEOUT, minimum=0.05, maximum=30, help="seconds"),
    Field("read_timeout", (int, float), default=DEFAULT_READ_TIMEOUT, minimum=0.05, maximum=120, help="seconds"),
)

_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "an object"}
_KIND_NAMES[list] = "an array"


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "a number"
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def _is_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def url_problems(value: Any, pointer: str, *, what: str = "URL") -> list[ConfigProblem]:
    """The shape of a URL: absolute http(s), without user:password@. Where it may point
    depends on the environment: `Adapter.target_problems` (integrations/egress.py)."""
    try:
        egress.parse(value, what=what)
    except egress.EgressRefused as refused:
        hint = refused.hint
        if refused.code == "url_has_credentials":
            hint = "Remove user:password@ from the URL and send the secret in `credentials`."
        return [ConfigProblem(pointer, refused.code, refused.message, hint)]
    return []


# --- the interface ----------------------------------------------------------------------


class Adapter:
    """Base of every adapter. Subclasses set the class attributes and the four calls."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    # May a sandbox destination use this adapter (with a local target only)?
    sandbox_allowed: ClassVar[bool] = False
    fields: ClassVar[tuple[Field, ...]] = ()
    # Config keys holding URLs the adapter calls: checked against the outbound rules.
    url_fields: ClassVar[tuple[str, ...]] = ()
    # Credential keys: name → required. A plain-string credentials variable fills `primary_credential`.
    credential_keys: ClassVar[dict[str, bool]] = {}
    primary_credential: ClassVar[str | None] = None
    # The vendor's batch sizes, for docs and for the status page.
    batch_sizes: ClassVar[dict[str, int]] = {}
    # Sends (campaigns/sending/runner.py): the channels `send` can deliver, how many
    # recipients one `send(batch)` takes, and whether a batch sent again under the same
    # reference is deduplicated by the receiver (an idempotency key, a file name). Where it
    # is not, a batch whose outcome a killed worker never recorded is not sent again.
    send_channels: ClassVar[tuple[str, ...]] = ()
    send_batch_size: ClassVar[int] = 100
    send_idempotent: ClassVar[bool] = False

    def __init__(
        self,
        config: dict[str, Any],
        credentials: dict[str, Any] | None = None,
        *,
        breaker: Breaker | None = None,
        label: str = "",
        reference: str = "",
        probing: bool = False,
        policy: egress.Policy = egress.PRODUCTION,
    ) -> None:
        self.probing = probing
        # Where calls may go (the destination's environment decides; registry.build).
        self.policy = policy
        self.config = self.resolved(config)
        self.credentials = dict(credentials or {})
        self.breaker = breaker
        self.label = label or self.title or self.name
        # Names this unit of work to the vendor or the file system (e.g. "push-42").
        self.reference = reference or "adhoc"

    # -- configuration --

    @classmethod
    def resolved(cls, config: dict[str, Any]) -> dict[str, Any]:
        """`config` with the defaults of missing keys filled in."""
        out = {f.name: f.default for f in cls.fields if f.default is not None}
        out.update({k: v for k, v in (config or {}).items() if v is not None})
        return out

    @classmethod
    def validate_config(cls, config: Any) -> list[ConfigProblem]:
        """Every problem of `config` at once, each with a pointer and a hint."""
        if not isinstance(config, dict):
            return [ConfigProblem("", "invalid", "`config` must be a JSON object.", "Send an object of settings.")]
        known = {f.name: f for f in cls.fields}
        problems: list[ConfigProblem] = []
        for key in sorted(set(config) - set(known)):
            problems.append(
                ConfigProblem(
                    f"/{key}",
                    "unknown_config_key",
                    f"The {cls.name} adapter has no setting {key!r}.",
                    f"Use only: {', '.join(known)}. Secrets (keys, passwords, tokens) go in `credentials`.",
                )
            )
        for spec in cls.fields:
            value = config.get(spec.name)
            pointer = f"/{spec.name}"
            if value is None:
                if spec.required:
                    problems.append(
                        ConfigProblem(
                            pointer, "required", f"{spec.name!r} is required.", f"Add {spec.name}: {spec.help}"
                        )
                    )
                continue
            if not _is_kind(value, spec.kind):
                problems.append(
                    ConfigProblem(
                        pointer,
                        "invalid_type",
                        f"{spec.name!r} must be {_kind_name(spec.kind)}.",
                        f"Send {spec.name} as {_kind_name(spec.kind)}: {spec.help}",
                    )
                )
                continue
            if spec.choices and value not in spec.choices:
                problems.append(
                    ConfigProblem(
                        pointer,
                        "invalid_choice",
                        f"{spec.name!r} is {value!r}; it must be one of {', '.join(map(str, spec.choices))}.",
                        f"Use one of: {', '.join(map(str, spec.choices))}.",
                    )
                )
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                low, high = spec.minimum, spec.maximum
                if (low is not None and value < low) or (high is not None and value > high):
                    problems.append(
                        ConfigProblem(
                            pointer,
                            "out_of_range",
                            f"{spec.name!r} is {value}; it must be between {low:g} and {high:g}.",
                            f"Use a value from {low:g} to {high:g} ({spec.help}).",
                        )
                    )
            if isinstance(value, str) and not value.strip() and spec.required:
                problems.append(
                    ConfigProblem(pointer, "blank", f"{spec.name!r} is empty.", f"Send a value: {spec.help}")
                )
        if not problems:
            problems.extend(cls.check_config(cls.resolved(config)))
        return problems

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[ConfigProblem]:
        """Rules beyond types and ranges (URLs, paths, combinations). `config` is resolved."""
        return []

    @classmethod
    def target_problems(cls, config: dict[str, Any], *, sandbox: bool) -> list[ConfigProblem]:
        """Why `config` points where this environment may not send (resolved config): in a
        sandbox anything but a local target; elsewhere private, loopback, metadata … addresses
        and plain http (integrations/egress.py). Checked on save and before every call."""
        policy = egress.destination_policy(sandbox=sandbox)
        problems = []
        for name in cls.url_fields:
            value = config.get(name)
            if not value:
                continue
            try:
                egress.check_url(value, policy)
            except egress.EgressRefused as refused:
                problems.append(ConfigProblem(f"/{name}", refused.code, refused.message, refused.hint))
        return problems

    @classmethod
    def validate_credentials(cls, credentials: Any) -> list[ConfigProblem]:
        """Problems of a credentials object (its keys only; values are never echoed)."""
        if not isinstance(credentials, dict):
            return [ConfigProblem("", "invalid", "`credentials` must be a JSON object.", cls._credentials_hint())]
        problems = []
        for key in sorted(set(credentials) - set(cls.credential_keys)):
            problems.append(
                ConfigProblem(
                    f"/{key}",
                    "unknown_credential",
                    f"The {cls.name} adapter reads no credential {key!r}.",
                    cls._credentials_hint(),
                )
            )
        for key, required in cls.credential_keys.items():
            value = credentials.get(key)
            if required and (not isinstance(value, str) or not value.strip()):
                problems.append(
                    ConfigProblem(
                        f"/{key}", "required", f"The credential {key!r} is required.", cls._credentials_hint()
                    )
                )
            elif value is not None and not isinstance(value, str):
                problems.append(
                    ConfigProblem(
                        f"/{key}", "invalid_type", f"The credential {key!r} must be a string.", "Send a string."
                    )
                )
        return problems

    @classmethod
    def _credentials_hint(cls) -> str:
        if not cls.credential_keys:
            return f"The {cls.name} adapter needs no credentials; leave `credentials` out."
        keys = ", ".join(f"{k} ({'required' if r else 'optional'})" for k, r in cls.credential_keys.items())
        return f"The {cls.name} adapter reads: {keys}."

    def require_credentials(self) -> None:
        missing = [k for k, required in self.credential_keys.items() if required and not self.credentials.get(k)]
        if missing:
            raise ConfigurationError(
                f"{self.label} has no {', '.join(missing)} in its credentials.",
                hint="Send them with PATCH /api/v1/destinations/{id} (`credentials` or `credentials_env`).",
            )

    # -- the four calls --

    def push_members(
        self, added: Sequence[Any], removed: Sequence[Any], checkpoint: Checkpoint | None = None
    ) -> DeliveryResult:
        raise NotImplementedError

    def send(self, batch: dict[str, Any], checkpoint: Checkpoint | None = None) -> DeliveryResult:
        raise ConfigurationError(
            f"The {self.name} adapter cannot send messages.",
            hint="Send through a destination whose adapter supports sends (webhook, file, crm, engagement).",
        )

    def health(self) -> HealthResult:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def forget_session(self) -> None:
        """Drop what the adapter caches across calls (an access token): a payload preview
        calls it after running the adapter against a recording transport."""
        return None

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        return redact(text, self.credentials)[:ERROR_TEXT]


# --- HTTP adapters ------------------------------------------------------------------------


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def body_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class HttpAdapter(Adapter):
    """An adapter that calls a vendor over HTTP: timeouts, retries, rate limits, breaker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A connection test (a person waiting on an HTTP request) tries once and never waits.
        self.server_retries = 0 if self.probing else SERVER_RETRIES
        self.max_inline_wait = 0.0 if self.probing else MAX_INLINE_WAIT
        read = float(self.config.get("read_timeout", DEFAULT_READ_TIMEOUT))
        connect = float(self.config.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
        if self.probing:
            read, connect = min(read, PROBE_TIMEOUT), min(connect, PROBE_TIMEOUT)
        self.timeout = httpx.Timeout(read, connect=connect)
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            # Redirects are not followed: a vendor API does not redirect, and following one
            # could carry the Authorization header somewhere else. Every connection obeys the
            # environment's outbound rules (integrations/egress.py).
            self._client = egress.client(self.policy, timeout=self.timeout, headers={"User-Agent": USER_AGENT})
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # Hooks for the vendor's conventions.

    def auth_headers(self) -> dict[str, str]:
        return {}

    def before_call(self) -> None:
        """Wait here when the vendor said its budget is used up (Braze: X-RateLimit-*)."""

    def after_response(self, response: httpx.Response) -> None:
        """Read rate-limit headers and the like."""

    def rate_limit_wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait after a 429 (None: no hint; back off exponentially)."""
        return retry_after_seconds(response)

    def on_unauthorized(self, response: httpx.Response) -> bool:
        """A 401: return True to retry once with fresh auth_headers() (an expired token)."""
        return False

    def rejection_message(self, response: httpx.Response) -> str:
        body = body_json(response)
        text = ""
        if isinstance(body, dict):
            text = str(body.get("message") or body.get("error_description") or body.get("error") or "")
        elif response.text:
            text = response.text[:200]
        return text

    def rejection_hint(self, status: int) -> str:
        if status in (401, 403):
            return (
                f"{self.label} refused the credentials: send valid ones with PATCH /api/v1/destinations/{{id}} "
                "(`credentials`), then POST /api/v1/destinations/{id}/test."
            )
        if status == 404:
            return "Check the destination's URL and identifiers in `config`."
        return "Check the destination's `config` against docs/destinations.md; the vendor's message is in `detail`."

    # The call.

    def _breaker_gate(self) -> None:
        if self.breaker is not None and not self.breaker.allow():
            snap = self.breaker.snapshot()
            raise CircuitOpen(
                f"{self.label} is unavailable ({snap.failures} failures, last: {snap.last_error or 'unknown'}); "
                "calls are paused until the cool-down ends.",
                snapshot=snap,
            )

    def _server_failure(self, text: str) -> None:
        if self.breaker is not None:
            self.breaker.record_failure(text)

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        auth: bool = True,
    ) -> httpx.Response:
        """One logical call: retried on 5xx/timeouts (counted on the breaker), waited on
        429 within limits, re-authenticated once on an expired token; returns a 2xx/3xx
        response or raises an AdapterError."""
        server_attempts = rate_attempts = 0
        reauthenticated = False
        while True:
            self._breaker_gate()
            self.before_call()
            call_headers = {**(headers or {}), **(self.auth_headers() if auth else {})}
            failure = ""
            response: httpx.Response | None = None
            try:
                response = self.client.request(
                    method, url, json=json, params=params, headers=call_headers, content=content, timeout=self.timeout
                )
            except egress.EgressRefused as refused:
                raise TargetRefused(f"{self.label}: nothing was sent. {refused.message}", hint=refused.hint) from None
            except httpx.TimeoutException as exc:
                failure = f"timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                failure = f"connection error ({type(exc).__name__})"
            if response is not None and response.status_code >= 500:
                failure = f"{response.status_code}"
                message = self.rejection_message(response)
                if message:
                    failure += f" {self.redact(message)[:120]}"
            if failure:
                self._server_failure(failure)
                server_attempts += 1
                if server_attempts > self.server_retries:
                    raise ServerFailure(
                        f"{self.label} did not answer successfully ({failure}).",
                        hint="Nothing to do: the work is kept and retried automatically.",
                        status=response.status_code if response is not None else None,
                    )
                if self.breaker is not None and self.breaker.snapshot().state == OPEN:
                    continue  # the gate raises CircuitOpen; no point in waiting first
                sleep(SERVER_BACKOFF * 2 ** (server_attempts - 1))
                continue
            assert response is not None
            # The vendor answered: it is up, whatever it said.
            if self.breaker is not None:
                self.breaker.record_success()
            self.after_response(response)
            status = response.status_code
            if status == 429:
                hinted = self.rate_limit_wait(response, rate_attempts)
                rate_attempts += 1
                wait = hinted if hinted is not None else RATE_LIMIT_BACKOFF * 2 ** (rate_attempts - 1)
                if wait > self.max_inline_wait or rate_attempts > RATE_LIMIT_RETRIES:
                    # Without a hint from the vendor, give it a while before the next try.
                    defer = max(wait, 1.0) if hinted is not None else max(wait, DEFAULT_DEFER_SECONDS)
                    said = f"it asked to wait {hinted:.0f} s" if hinted is not None else "it named no wait"
                    raise RateLimited(
                        f"{self.label} is rate limiting us (429; {said}).",
                        retry_after=defer,
                        hint="Nothing to do: the work is retried when the vendor's limit resets.",
                    )
                sleep(wait)
                continue
            if status == 401 and not reauthenticated and self.on_unauthorized(response):
                reauthenticated = True
                continue
            if 400 <= status < 500:
                message = self.redact(self.rejection_message(response))
                raise VendorRejected(
                    f"{self.label} refused the request ({status}{': ' + message if message else ''}).",
                    hint=self.rejection_hint(status),
                    status=status,
                )
            return response

    def timed_health(self, probe: Callable[[HealthResult], None]) -> HealthResult:
        """Run `probe` and turn an AdapterError into a failed health result."""
        started = time.monotonic()
        result = HealthResult(ok=True, message=f"{self.label} answered.")
        try:
            probe(result)
        except AdapterError as exc:
            result.ok = False
            result.message = exc.message
            result.check("call", False, exc.message)
        result.latency_ms = int((time.monotonic() - started) * 1000)
        if result.ok and any(not c["ok"] for c in result.checks):
            result.ok = False
            result.message = next(c["message"] for c in result.checks if not c["ok"])
        return result
