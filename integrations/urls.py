"""Routes of the integrations API (included under /api/v1/), with or without a trailing slash."""

from django.urls import re_path

from integrations import api, api_destinations, api_jobs, api_webhooks

urlpatterns = [
    re_path(r"^events/?$", api.DomainEventList.as_view(), name="event-list"),
    *api_webhooks.urlpatterns,
    *api_destinations.urlpatterns,
    *api_jobs.urlpatterns,
]
