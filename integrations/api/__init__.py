"""The integrations API, one module per area: events, webhooks, destinations, jobs and status.
The routes below are included under /api/v1/, with or without a trailing slash."""

from django.urls import re_path

from integrations.api import destinations as api_destinations
from integrations.api import events as api
from integrations.api import jobs as api_jobs
from integrations.api import webhooks as api_webhooks

urlpatterns = [
    re_path(r"^events/?$", api.DomainEventList.as_view(), name="event-list"),
    *api_webhooks.urlpatterns,
    *api_destinations.urlpatterns,
    *api_jobs.urlpatterns,
]
