"""The governance API, one module per topic: tokens, me (and quotas), flags, approvals, audit.

Each module defines `urlpatterns`; this package joins them, and marketerapi/urls.py includes
them under /api/v1/.
"""

from governance.api import approvals, audit, flags, me, tokens

urlpatterns = [
    *me.urlpatterns,
    *tokens.urlpatterns,
    *flags.urlpatterns,
    *approvals.urlpatterns,
    *audit.urlpatterns,
]
