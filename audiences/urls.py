"""Routes of the profiles and ingestion API (included under /api/v1/); each answers with
and without a trailing slash."""

from django.urls import re_path

from audiences import api

urlpatterns = [
    re_path(r"^profiles/?$", api.ProfileList.as_view(), name="profile-list"),
    re_path(r"^profiles/bulk/?$", api.ProfileBulkUpsert.as_view(), name="profile-bulk"),
    re_path(r"^profiles/(?P<profile_id>[0-9]{1,18})/?$", api.ProfileDetail.as_view(), name="profile-detail"),
    re_path(
        r"^profiles/(?P<profile_id>[0-9]{1,18})/consent-history/?$",
        api.ConsentHistory.as_view(),
        name="profile-consent-history",
    ),
    re_path(r"^profile-events/bulk/?$", api.ProfileEventBulkIngest.as_view(), name="profile-event-bulk"),
    re_path(r"^consent/sync/?$", api.ConsentSync.as_view(), name="consent-sync"),
]
