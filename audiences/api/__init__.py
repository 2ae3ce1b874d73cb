"""The audiences API, one module per area: profiles (ingestion, consent), definitions
(audiences, preview, validate, share, transfer, promote, copy), suppressions (suppression lists) and
publishing (publish, versions, rollback, memberships). The routes below are included under /api/v1/; each
answers with and without a trailing slash."""

from django.urls import re_path

from audiences.api import definitions as audience_api
from audiences.api import exports as export_api
from audiences.api import profiles as api
from audiences.api import publishing as publish_api
from audiences.api import suppressions as suppression_api

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
    # Audience definitions, preview, validate, share, transfer, promote, copy (definitions.py);
    # suppression lists (suppressions.py).
    re_path(r"^audiences/?$", audience_api.AudienceListCreate.as_view(), name="audience-list"),
    re_path(r"^audiences/preview/?$", audience_api.AudienceRulesPreview.as_view(), name="audience-preview-rules"),
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/?$", audience_api.AudienceDetail.as_view(), name="audience-detail"
    ),
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/preview/?$",
        audience_api.AudiencePreview.as_view(),
        name="audience-preview",
    ),
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/validate/?$",
        audience_api.AudienceValidate.as_view(),
        name="audience-validate",
    ),
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/share/?$", audience_api.AudienceShare.as_view(), name="audience-share"
    ),
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/transfer/?$",
        audience_api.AudienceTransfer.as_view(),
        name="audience-transfer",
    ),
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/promote/?$",
        audience_api.AudiencePromote.as_view(),
        name="audience-promote",
    ),
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/copy/?$",
        audience_api.AudienceCopyView.as_view(),
        name="audience-copy",
    ),
    re_path(r"^suppressions/?$", suppression_api.SuppressionLists.as_view(), name="suppression-list"),
    # Publish, versions, rollback, memberships (audiences/api/publishing.py).
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/publish/?$",
        publish_api.AudiencePublish.as_view(),
        name="audience-publish",
    ),
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/versions/?$",
        publish_api.AudienceVersions.as_view(),
        name="audience-versions",
    ),
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/rollback/?$",
        publish_api.AudienceRollback.as_view(),
        name="audience-rollback",
    ),
    re_path(
        r"^audiences/(?P<audience_id>[0-9]{1,18})/memberships/?$",
        publish_api.AudienceMemberships.as_view(),
        name="audience-memberships",
    ),
    # Exports (audiences/api/exports.py); the file itself is at /downloads/exports/<signature>.
    re_path(r"^exports/?$", export_api.ExportListCreate.as_view(), name="export-list"),
    re_path(r"^exports/(?P<export_id>[0-9]{1,18})/?$", export_api.ExportDetail.as_view(), name="export-detail"),
    re_path(
        r"^exports/(?P<export_id>[0-9]{1,18})/download/?$",
        export_api.ExportDownloadLink.as_view(),
        name="export-download",
    ),
]
