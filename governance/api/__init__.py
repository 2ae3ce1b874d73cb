"""The governance API, one module per topic: tokens, me (and quotas), flags, approvals, audit.

Each module defines `urlpatterns`; this package joins them, and marketerapi/urls.py includes
them under /api/v1/.
"""

from governance.api import approvals, audit, flags, me, metrics, requests, tokens

urlpatterns = [
    *me.urlpatterns,
    *requests.urlpatterns,
    *tokens.urlpatterns,
    *flags.urlpatterns,
    *approvals.urlpatterns,
    *audit.urlpatterns,
    *metrics.urlpatterns,
]
