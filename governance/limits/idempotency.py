"""Idempotency keys: a POST that starts work, sent again with the same `Idempotency-Key`,
runs once (PRODUCT.md §6, Limits; docs/limits.md for integrators).

Mark a view's handler with `@idempotent`. A request without the header runs as usual.
With it, the key is scoped to its owner — the person (or service account) and the
environment, whichever of their tokens or their portal session sends it, so a retry through
a second token of the same person never does the work twice — and the request is
fingerprinted (SHA-256 over method, path and body):

- first time: the key is claimed **in the same transaction as the work**, and the
  response is stored in it at the end. A refusal (an exception, any 4xx or 5xx) rolls the
  claim back with the work, so the key is not spent and a corrected request may use it;
  a crash leaves no half-claimed key behind.
- same key, same fingerprint, within 24 h: the first response is replayed (status, body,
  `Location`) with `Idempotent-Replayed: true`; nothing runs again.
- same key, another fingerprint: 422 `idempotency_key_reused`.
- same key while the first request is still running: 409 `idempotency_in_flight`. On
  PostgreSQL the claim takes a transaction-scoped advisory lock on (owner, key) with
  `pg_try_advisory_xact_lock`, which fails at once instead of queueing behind the
  first request; the unique (owner, key) constraint is the backstop that makes a second
  unit of work impossible on any database.
- a key longer than 255 characters, empty or with non-printable characters: 400
  `idempotency_key_invalid`.

Records expire after 24 h; an expired one is replaced when its key is claimed again, and
`purge_expired` (Celery beat, governance/tasks.py) deletes the rest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.http.request import RawPostDataException
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from governance.limits.errors import IdempotencyInFlight, IdempotencyKeyInvalid, IdempotencyKeyReused
from governance.models import ApiToken, IdempotencyRecord, IdempotencyState
from marketerapi.problems import ApplicationError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Printable ASCII without spaces: what clients send (UUIDs, ULIDs, "order-123-retry").
_KEY = re.compile(r"^[\x21-\x7e]+$")
# Response headers worth replaying; the rest (RateLimit, X-Request-ID) belong to each request.
STORED_HEADERS = ("Location", "Content-Location")
# Advisory lock namespace: the single 64-bit key form, which PostgreSQL keeps apart from
# the two-key form the audit chain and the relay use.
_LOCK_SALT = b"marketerapi.idempotency\x00"

PARAMETER = OpenApiParameter(
    name=HEADER,
    location=OpenApiParameter.HEADER,
    required=False,
    type=str,
    description="A unique key (e.g. a UUID) per unit of work, at most 255 characters. Resending the same "
    "request with the same key within 24 hours replays the first response (with `Idempotent-Replayed: "
    "true`) instead of doing the work again; the same key with another body is a 422 "
    "`idempotency_key_reused`; while the first is still running, 409 `idempotency_in_flight`.",
)


# --- the pieces -----------------------------------------------------------------------


def validate_key(raw: str) -> str:
    if len(raw) > MAX_KEY_LENGTH:
        raise IdempotencyKeyInvalid(f"The Idempotency-Key is {len(raw)} characters long; at most 255 are allowed.")
    if not _KEY.match(raw):
        raise IdempotencyKeyInvalid("The Idempotency-Key is empty or holds spaces or non-ASCII characters.")
    return raw


def owner_of(request: Any) -> str | None:
    """Keys are scoped to a person (or service account) in an environment: `user:<id>:env:<id>`,
    the same for each of their tokens there and for their portal session in it."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiToken):
        return f"user:{auth.user_id}:env:{auth.environment_id}"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        from governance.access.selectors import environment_for_session

        return f"user:{user.pk}:env:{environment_for_session(request).pk}"
    return None


def _path(request: Any) -> str:
    # `/profiles/bulk` and `/profiles/bulk/` are the same endpoint (PRODUCT.md §6).
    path = request.path.rstrip("/") or "/"
    query = request.META.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


def fingerprint(request: Any) -> str:
    """SHA-256 over the method, the path and the body as sent."""
    try:
        body = request.body
    except RawPostDataException:
        # The body stream was read already (a permission read request.data): fall back
        # to canonical JSON of the parsed data, which is stable for the same body.
        body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), cls=JSONEncoder).encode()
    digest = hashlib.sha256()
    digest.update(request.method.upper().encode() + b"\n" + _path(request).encode() + b"\n")
    digest.update(body)
    return digest.hexdigest()


def _lock_id(owner: str, key: str) -> int:
    digest = hashlib.sha256(_LOCK_SALT + owner.encode() + b"\x00" + key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _try_lock(owner: str, key: str) -> bool:
    if connection.vendor != "postgresql":
        # SQLite serializes writers: a second claimer waits for the first to commit and
        # then finds its record. Other databases rely on the unique constraint alone.
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_id(owner, key)])
        return bool(cursor.fetchone()[0])


def replay(record: IdempotencyRecord) -> Response:
    headers = {**(record.response_headers or {}), REPLAYED_HEADER: "true"}
    return Response(record.response_body, status=record.status_code, headers=headers)


def _answer_existing(record: IdempotencyRecord, request_hash: str) -> Response:
    if record.request_hash != request_hash:
        raise IdempotencyKeyReused(
            f"The key was first used for {record.method} {record.path} at "
            f"{record.created_at:%Y-%m-%d %H:%M:%S} UTC with another body.",
        )
    if record.state != IdempotencyState.COMPLETED:
        raise _in_flight()
    return replay(record)


def _in_flight() -> IdempotencyInFlight:
    return IdempotencyInFlight(
        "Another request with this Idempotency-Key has not finished yet.", headers={"Retry-After": "1"}
    )


def claim(*, owner: str, key: str, request_hash: str, method: str, path: str) -> IdempotencyRecord | Response:
    """Claim (owner, key) for this request, or answer from the first one.

    Returns the new in-flight record (the caller does the work and calls `finish` in the
    same transaction) or the replayed response; raises IdempotencyKeyReused or
    IdempotencyInFlight.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("claim() must run inside the transaction of the work")
    if not _try_lock(owner, key):
        raise _in_flight()
    now = timezone.now()
    existing = IdempotencyRecord.objects.filter(owner=owner, key=key).first()
    if existing is not None and existing.expires_at <= now:
        existing.delete()
        existing = None
    if existing is not None:
        return _answer_existing(existing, request_hash)
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                owner=owner,
                key=key,
                request_hash=request_hash,
                method=method.upper()[:8],
                path=path[:500],
                state=IdempotencyState.IN_FLIGHT,
                created_at=now,
                expires_at=now + TTL,
            )
    except IntegrityError:
        # Without the advisory lock (not PostgreSQL): another claimer committed first.
        existing = IdempotencyRecord.objects.filter(owner=owner, key=key).first()
        if existing is None:
            raise _in_flight() from None
        return _answer_existing(existing, request_hash)


def finish(record: IdempotencyRecord, response: Response) -> None:
    """Store a success for replay; for anything else give the key back."""
    if not 200 <= response.status_code < 300:
        record.delete()
        return
    data = getattr(response, "data", None)
    record.state = IdempotencyState.COMPLETED
    record.status_code = response.status_code
    # Through DRF's encoder: datetimes, decimals and UUIDs become what the client saw.
    record.response_body = None if data is None else json.loads(json.dumps(data, cls=JSONEncoder))
    record.response_headers = {name: response[name] for name in STORED_HEADERS if response.has_header(name)}
    record.save(update_fields=["state", "status_code", "response_body", "response_headers"])


def purge_expired(*, now: Any = None, batch_size: int = 1000) -> int:
    """Delete expired records in batches (short transactions); returns how many."""
    now = now or timezone.now()
    total = 0
    while True:
        ids = list(IdempotencyRecord.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return total
        total += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]


# --- the decorator ----------------------------------------------------------------------


def _record_denial_again(exc: Exception) -> None:
    """policy.require audits a refusal in its own transaction; inside a claim that
    transaction is a savepoint the refusal rolls back, so record it again after."""
    denial = getattr(exc, "denial", None)
    if denial is None:
        return
    from governance.audit import trail as audit
    from governance.models import Outcome

    actor, action, target, decision = denial
    with transaction.atomic():
        audit.record(actor, action, target, outcome=str(Outcome.DENIED), decision=decision)


def idempotent(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Make a DRF handler (`def post(self, request, …)`, or an `@action`) honour
    `Idempotency-Key`. Put it below `@extend_schema`; it documents the header itself."""

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        raw = request.headers.get(HEADER)
        owner = owner_of(request)
        if raw is None or owner is None:
            return handler(view, request, *args, **kwargs)
        key = validate_key(raw)
        request_hash = fingerprint(request)
        try:
            with transaction.atomic():
                claimed = claim(
                    owner=owner, key=key, request_hash=request_hash, method=request.method or "", path=_path(request)
                )
                if isinstance(claimed, Response):
                    return claimed
                response = handler(view, request, *args, **kwargs)
                finish(claimed, response)
                return response
        except ApplicationError as exc:
            _record_denial_again(exc)
            raise

    wrapper.idempotent = True  # type: ignore[attr-defined]
    return extend_schema(parameters=[PARAMETER])(wrapper)
