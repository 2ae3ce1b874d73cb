"""Limits (docs/limits.md): quotas — `services` (counting), `selectors` (reads), `quotas`
(periods and which policy applies) —, rate limits (`ratelimit`, and `throttling` for DRF
and every response), idempotency keys (`idempotency`), and their refusals (`errors`)."""
