"""Writes to the request log that are not a request's own row: pruning past retention.

The request log is a record of traffic, not a governed object: pruning it is housekeeping
(like the idempotency purge), run by beat, with no policy decision and no audit event.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from governance.models import RequestLog


def request_log_prune(*, now: datetime | None = None) -> int:
    """Delete the rows older than REQUEST_LOG_RETENTION_DAYS, in one DELETE; how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.REQUEST_LOG_RETENTION_DAYS)
    deleted, _ = RequestLog.objects.filter(occurred_at__lt=cutoff).delete()
    return deleted
