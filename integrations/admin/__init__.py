"""The integrations admin, one module per area; importing this package registers them all."""

from integrations.admin import destinations, events, jobs, webhooks  # noqa: F401
