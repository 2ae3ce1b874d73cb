"""Routes of the integrations API (included under /api/v1/), with or without a trailing slash."""

from django.urls import re_path

from integrations import api

urlpatterns = [
    re_path(r"^events/?$", api.DomainEventList.as_view(), name="event-list"),
]
