"""The audiences admin, one module per area; importing this package registers them all."""

from audiences.admin import catalogue, definitions, exports, profiles, sharing, versions  # noqa: F401
