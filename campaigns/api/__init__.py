"""The campaigns API, one module per area: campaigns (definitions, readiness, lifecycle,
sends). The routes are included under /api/v1/; each answers with and without a trailing slash."""

from django.urls import re_path

from campaigns.api import campaigns as api

_ID = r"(?P<campaign_id>[0-9]{1,18})"

urlpatterns = [
    re_path(r"^campaigns/?$", api.CampaignListCreate.as_view(), name="campaign-list"),
    re_path(rf"^campaigns/{_ID}/?$", api.CampaignDetail.as_view(), name="campaign-detail"),
    re_path(rf"^campaigns/{_ID}/readiness/?$", api.CampaignReadiness.as_view(), name="campaign-readiness"),
    re_path(rf"^campaigns/{_ID}/activate/?$", api.CampaignActivate.as_view(), name="campaign-activate"),
    re_path(rf"^campaigns/{_ID}/pause/?$", api.CampaignPause.as_view(), name="campaign-pause"),
    re_path(rf"^campaigns/{_ID}/resume/?$", api.CampaignResume.as_view(), name="campaign-resume"),
    re_path(rf"^campaigns/{_ID}/cancel/?$", api.CampaignCancel.as_view(), name="campaign-cancel"),
    re_path(rf"^campaigns/{_ID}/sends/?$", api.CampaignSends.as_view(), name="campaign-sends"),
]
