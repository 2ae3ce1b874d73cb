"""The campaigns admin, one module per area; importing this package registers them all."""

from campaigns.admin import campaigns  # noqa: F401
