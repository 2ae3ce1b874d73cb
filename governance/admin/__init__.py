"""The governance admin for platform engineers, one module per area; importing this package
registers them all (Django's admin autodiscovery imports `governance.admin`)."""

from governance.admin import configuration  # noqa: F401
