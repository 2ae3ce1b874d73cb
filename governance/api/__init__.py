"""The governance API, one module per topic: tokens, me (and quotas), flags, approvals, audit.

Each module defines `urlpatterns`; governance/urls.py joins them under /api/v1/.
"""
