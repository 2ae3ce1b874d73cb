"""The integrations API, one module per area: events, webhooks, dead letters, destinations,
jobs and status. The routes below are included under /api/v1/, with or without a
trailing slash."""

from django.urls import re_path

from integrations.api import dead_letters, destinations, events, jobs, status, webhooks

urlpatterns = [
    re_path(r"^events/?$", events.DomainEventList.as_view(), name="event-list"),
    *webhooks.urlpatterns,
    *dead_letters.urlpatterns,
    *destinations.urlpatterns,
    *jobs.urlpatterns,
    *status.urlpatterns,
]
