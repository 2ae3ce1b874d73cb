"""The limits' refusals: a quota used up, a rate class exceeded, and the three ways an
Idempotency-Key can be refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marketerapi.problems import ApplicationError

if TYPE_CHECKING:
    from governance.limits.ratelimit import RateLimitResult


class QuotaExceeded(ApplicationError):
    status = 429
    code = "quota_exceeded"
    title = "Quota used up"
    hint = "Ask an admin to raise the quota, or wait until it resets."


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"
    hint = "Wait for the number of seconds in Retry-After, then send the request again."

    @classmethod
    def from_result(cls, result: RateLimitResult) -> RateLimited:
        from governance.limits.ratelimit import BULK, PREVIEW

        advice = {
            BULK: "send fewer, larger batches (up to 10,000 rows each)",
            PREVIEW: "preview once after editing the rules rather than on every change",
        }.get(result.rate_class, "spread the calls over time")
        # The draft's quota-exceeded problem type names the policies that refused.
        violated: dict[str, Any] = {"violated-policies": [result.rate_class]}
        return cls(
            f"More than {result.limit} {result.rate_class} requests in {result.window} seconds.",
            hint=f"Wait {result.retry_after} seconds (Retry-After) and send the request again; if it "
            f"happens again, back off exponentially and {advice}. GET /api/v1/me shows your limits; "
            "an admin can set a token's own limits.",
            headers=result.headers(),
            rate_class=result.rate_class,
            limit=result.limit,
            window=result.window,
            retry_after=result.retry_after,
            **violated,
        )


class IdempotencyKeyInvalid(ApplicationError):
    status = 400
    code = "idempotency_key_invalid"
    title = "The Idempotency-Key header is not valid"
    hint = "Send 1 to 255 printable ASCII characters without spaces, e.g. a UUID: one new key per unit of work."


class IdempotencyKeyReused(ApplicationError):
    status = 422
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used for another request"
    hint = (
        "Use a new Idempotency-Key for a different request. Resend with this key only the exact same "
        "request (same method, path and body); keys are kept for 24 hours."
    )


class IdempotencyInFlight(ApplicationError):
    status = 409
    code = "idempotency_in_flight"
    title = "A request with this Idempotency-Key is still running"
    hint = (
        "Wait a moment (see Retry-After) and send the same request again with the same key: you will get "
        "the first request's response once it has finished."
    )
