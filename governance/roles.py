"""The six roles of PRODUCT.md §4 as Django groups, and the model permissions each holds.

This map is the single source: a data migration and every `migrate` (post_migrate)
make the groups' permissions equal to it. Teams are the other groups.
"""

from __future__ import annotations

from typing import Any

ANALYST = "analyst"
CAMPAIGN_OPERATOR = "campaign_operator"
APPROVER = "approver"
COMPLIANCE_REVIEWER = "compliance_reviewer"
DEVELOPER = "developer"
ADMIN = "admin"

ROLE_NAMES: tuple[str, ...] = (ANALYST, CAMPAIGN_OPERATOR, APPROVER, COMPLIANCE_REVIEWER, DEVELOPER, ADMIN)

# The audit log (PRODUCT.md §4): every role reads the events of its own actions; these
# roles read everyone's, in their environment. Decided by role, not by a model permission:
# `governance.view_auditevent` stays the admin site's, so giving someone the admin site's
# view never widens what the API shows them (and no migration is needed).
AUDIT_READ_ALL_ROLES: frozenset[str] = frozenset({APPROVER, COMPLIANCE_REVIEWER, ADMIN})


_EVERYONE = [
    "governance.view_environment",
    "audiences.view_profile",
    "audiences.view_consent",
    "audiences.view_consentchange",
    "audiences.view_profileevent",
    "governance.view_outboxevent",
    "integrations.view_job",
    "audiences.view_audience",
    "audiences.view_suppressionlist",
    "audiences.view_regionalrestriction",
    "campaigns.view_campaign",
    "campaigns.view_reviewitem",
]

_AUDIENCE_AUTHORING = [
    "audiences.add_audience",
    "audiences.change_audience",
    "audiences.delete_audience",
    "audiences.publish_audience",
    "audiences.share_audience",
]

_CAMPAIGN_AUTHORING = [
    "campaigns.add_campaign",
    "campaigns.change_campaign",
    "campaigns.delete_campaign",
    "campaigns.activate_campaign",
    "campaigns.share_campaign",
]

# Suppression lists are kept by marketers and synced by integrations alike, in every
# environment (not sandbox-only for developers); the global list's changes ask for approval.
_SUPPRESSION_EDITING = [
    "audiences.add_suppressionlist",
    "audiences.change_suppressionlist",
]

_INTEGRATION = [
    "audiences.ingest_profiles",
    "audiences.sync_consent",
    "governance.view_apitoken",
    "governance.add_apitoken",
    "governance.delete_apitoken",
    "governance.view_serviceaccount",
    "governance.add_serviceaccount",
    "integrations.view_destination",
    "integrations.add_destination",
    "integrations.change_destination",
    "integrations.view_webhooksubscription",
    "integrations.add_webhooksubscription",
    "integrations.change_webhooksubscription",
    "integrations.view_deadletter",
    "integrations.change_deadletter",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    # Exports (PRODUCT.md §4): masked for analysts, operators and admins; with PII for
    # compliance reviewers only.
    ANALYST: [*_EVERYONE, "audiences.add_export"],
    CAMPAIGN_OPERATOR: [
        *_EVERYONE,
        *_AUDIENCE_AUTHORING,
        *_CAMPAIGN_AUTHORING,
        *_SUPPRESSION_EDITING,
        "audiences.add_export",
    ],
    APPROVER: [*_EVERYONE],
    COMPLIANCE_REVIEWER: [*_EVERYONE, "audiences.view_profile_pii", "audiences.add_export", "audiences.export_pii"],
    DEVELOPER: [*_EVERYONE, *_INTEGRATION, *_AUDIENCE_AUTHORING, *_CAMPAIGN_AUTHORING, *_SUPPRESSION_EDITING],
    ADMIN: [
        *_EVERYONE,
        "audiences.add_export",
        "audiences.view_export",
        *_INTEGRATION,
        *_AUDIENCE_AUTHORING,
        *_CAMPAIGN_AUTHORING,
        *_SUPPRESSION_EDITING,
        "audiences.add_regionalrestriction",
        "audiences.change_regionalrestriction",
        # The catalogue of custom attributes and events: who marks one as personal data.
        "audiences.view_catalogueentry",
        "audiences.change_catalogueentry",
        "governance.change_environment",
        "governance.add_environment",
        "governance.view_auditevent",
        # The admin site's configuration pages (governance/admin/, governance/configuration/services.py).
        "governance.view_approvalpolicy",
        "governance.add_approvalpolicy",
        "governance.change_approvalpolicy",
        "governance.view_approvalrequest",
        "governance.view_approvalvote",
        "governance.view_quotapolicy",
        "governance.add_quotapolicy",
        "governance.change_quotapolicy",
        "governance.view_quotausage",
        "governance.view_flagmeta",
        "governance.add_flagmeta",
        "governance.change_flagmeta",
        "auth.add_group",
        "auth.add_user",
        # The admin site's read-only "is someone suppressed?" page (audiences/admin/definitions.py).
        "audiences.view_suppressionentry",
        "audiences.reset_sandbox",
        "waffle.view_flag",
        "waffle.change_flag",
        "waffle.add_flag",
        "waffle.view_switch",
        "waffle.change_switch",
        "waffle.view_sample",
        "waffle.change_sample",
        "auth.view_group",
        "auth.change_group",
        "auth.view_user",
        "auth.change_user",
    ],
}


# Permissions that a role holds only in a sandbox: developers author audiences and
# campaigns there to test integrations; in pilot and production marketers own them.
SANDBOX_ONLY: dict[str, frozenset[str]] = {DEVELOPER: frozenset([*_AUDIENCE_AUTHORING, *_CAMPAIGN_AUTHORING])}


def grants_here(role: str, permission: str, is_sandbox: bool) -> bool:
    return is_sandbox or permission not in SANDBOX_ONLY.get(role, frozenset())


def roles_with_permission(permission: str) -> list[str]:
    """Which roles hold `app_label.codename`, for hints such as "ask a developer or admin"."""
    return [role for role, perms in ROLE_PERMISSIONS.items() if permission in perms]


def sync_roles(apps: Any) -> None:
    """Create the role groups and set their permissions to ROLE_PERMISSIONS.

    Works with the historical `apps` of a migration as well as the live registry.
    Permissions of models that are not installed (yet) are skipped.
    """
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        # Permissions are normally created after all migrations; create them now so a
        # data migration can assign them in the same run.
        original = getattr(app_config, "models_module", None)
        if original is None:
            app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for name in names:
            app_label, codename = name.split(".", 1)
            perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if perm is not None:
                wanted.append(perm)
        group.permissions.set(wanted)


def sync_roles_after_migrate(sender: Any, app_config: Any = None, **kwargs: Any) -> None:
    if app_config is None or app_config.label != "governance":
        return
    from django.apps import apps as live_apps

    sync_roles(live_apps)
