"""The campaigns API, one module per area: campaigns (definitions, readiness, lifecycle,
sends) and review (the manual review queue). The routes are included under /api/v1/;
each answers with and without a trailing slash."""

from django.urls import re_path

from campaigns.api import campaigns as api
from campaigns.api import preview, review

_ID = r"(?P<campaign_id>[0-9]{1,18})"

urlpatterns = [
    re_path(r"^campaigns/?$", api.CampaignListCreate.as_view(), name="campaign-list"),
    re_path(rf"^campaigns/{_ID}/?$", api.CampaignDetail.as_view(), name="campaign-detail"),
    re_path(rf"^campaigns/{_ID}/share/?$", api.CampaignShare.as_view(), name="campaign-share"),
    re_path(rf"^campaigns/{_ID}/readiness/?$", api.CampaignReadiness.as_view(), name="campaign-readiness"),
    re_path(rf"^campaigns/{_ID}/activate/?$", api.CampaignActivate.as_view(), name="campaign-activate"),
    re_path(rf"^campaigns/{_ID}/pause/?$", api.CampaignPause.as_view(), name="campaign-pause"),
    re_path(rf"^campaigns/{_ID}/resume/?$", api.CampaignResume.as_view(), name="campaign-resume"),
    re_path(rf"^campaigns/{_ID}/cancel/?$", api.CampaignCancel.as_view(), name="campaign-cancel"),
    re_path(rf"^campaigns/{_ID}/sends/?$", api.CampaignSends.as_view(), name="campaign-sends"),
    # The payload preview (preview.py): what a destination would receive.
    re_path(
        r"^destinations/(?P<destination_id>[0-9]{1,18})/preview/?$",
        preview.DestinationPayloadPreview.as_view(),
        name="destination-payload-preview",
    ),
    # The manual review queue (review.py).
    re_path(r"^review-items/?$", review.ReviewItemList.as_view(), name="review-item-list"),
    re_path(
        r"^review-items/(?P<item_id>[0-9]{1,18})/retry/?$", review.ReviewItemRetry.as_view(), name="review-item-retry"
    ),
    re_path(
        r"^review-items/(?P<item_id>[0-9]{1,18})/cancel/?$",
        review.ReviewItemCancel.as_view(),
        name="review-item-cancel",
    ),
    re_path(
        r"^review-items/(?P<item_id>[0-9]{1,18})/payload/?$",
        review.ReviewItemPayload.as_view(),
        name="review-item-payload",
    ),
]
