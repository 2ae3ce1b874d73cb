"""Every action of every app, in one table: what it needs from the actor.

The policy engine (governance/policy/engine.py) decides an action by its row here, so
whether `webhook.create` exists never depends on which modules a process happened to
import. A new workflow adds its rows here; its domain rules (hooks) and approval
executors are registered in its app's AppConfig.ready().

Columns: the permission a role must hold (None: scoped by role elsewhere), a description
used in refusals ("Publish audiences needs one of the roles: …"), the token scope, whether
it changes state (unsafe: denials are audited), whether the target's owning team (or a
share of change) is needed, the feature flag that gates it, and whether the environment's
approval policy may ask for votes first.
"""

from __future__ import annotations

from dataclasses import dataclass

READ, WRITE, PUBLISH, EXPORT, INGEST, ADMIN = "read", "write", "publish", "export", "ingest", "admin"


@dataclass(frozen=True)
class Action:
    name: str
    permission: str | None
    description: str
    scope: str = READ
    # Safe actions only read; unsafe ones change state and are audited by their service.
    unsafe: bool = True
    # "change": the target's owning team, a share of change, or the admin role is needed.
    object_permission: str | None = None
    flag: str | None = None
    approval: bool = False
    # No model permission, but a person with none of the roles may not: what these actions
    # show (audit log, approvals, status) is scoped by role instead.
    any_role: bool = False


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        # Profiles, consent and profile events (audiences/profiles/).
        Action("profile.view", "audiences.view_profile", "See profiles, PII masked", unsafe=False),
        Action(
            "profile.view_pii", "audiences.view_profile_pii", "See profiles' emails, phones and names", unsafe=False
        ),
        Action("profile.ingest", "audiences.ingest_profiles", "Upsert profiles in bulk", scope=INGEST),
        Action("profile_event.ingest", "audiences.ingest_profiles", "Ingest behavioural profile events", scope=INGEST),
        Action("consent.sync", "audiences.sync_consent", "Apply consent updates", scope=INGEST),
        Action("consent.view", "audiences.view_consent", "See a profile's consent ledger", unsafe=False),
        # Audiences: definitions, preview, sharing, promotion, publishing (audiences/).
        # Deleting a draft needs no approval; archiving a published audience is `audience.archive`.
        Action("audience.view", "audiences.view_audience", "See audiences", unsafe=False),
        Action("audience.preview", "audiences.view_audience", "Preview audiences", unsafe=False),
        Action("audience.create", "audiences.add_audience", "Create audiences", scope=WRITE),
        Action("audience.edit", "audiences.change_audience", "Edit audiences", scope=WRITE, object_permission="change"),
        Action(
            "audience.share", "audiences.share_audience", "Share audiences", scope=WRITE, object_permission="change"
        ),
        # Handing an audience to another team: the owning team or an admin, never a share of change
        # (a hook in audiences/apps.py), so that a share cannot take the audience from its owners.
        Action(
            "audience.transfer",
            "audiences.change_audience",
            "Hand an audience to another team",
            scope=WRITE,
            object_permission="change",
        ),
        Action(
            "audience.delete",
            "audiences.delete_audience",
            "Delete a draft audience",
            scope=WRITE,
            object_permission="change",
        ),
        Action(
            "audience.archive",
            "audiences.delete_audience",
            "Archive or delete a published audience",
            scope=WRITE,
            object_permission="change",
            approval=True,
        ),
        Action("audience.promote", "audiences.add_audience", "Copy an audience into another environment", scope=WRITE),
        # Copying into one's own team needs what creating needs, not the source's team: it is
        # how another team's audience is built on (the policy engine's ownership hint offers it).
        Action("audience.copy", "audiences.add_audience", "Copy an audience into your team as a draft", scope=WRITE),
        Action(
            "audience.publish",
            "audiences.publish_audience",
            "Publish audiences",
            scope=PUBLISH,
            object_permission="change",
            approval=True,
        ),
        # Rolling back republishes what was live before; like a publish it needs the owning team
        # (or a share of change) and a `publish` token. No approval policy ships for it (PRODUCT.md
        # §5 lists none), but an admin may add one for `audience.rollback`.
        Action(
            "audience.rollback",
            "audiences.publish_audience",
            "Roll an audience back to an earlier version",
            scope=PUBLISH,
            object_permission="change",
            approval=True,
        ),
        Action("suppression.view", "audiences.view_suppressionlist", "See suppression lists", unsafe=False),
        Action("suppression.change", "audiences.change_suppressionlist", "Change suppression lists", scope=WRITE),
        Action(
            "suppression.change_global",
            "audiences.change_suppressionlist",
            "Change the global suppression list",
            scope=WRITE,
            approval=True,
        ),
        Action(
            "regional_restriction.change",
            "audiences.change_regionalrestriction",
            "Change regional restrictions",
            scope=ADMIN,
        ),
        Action("sandbox.reset", "audiences.reset_sandbox", "Rebuild a sandbox's synthetic data", scope=ADMIN),
        Action(
            "catalogue.mark_pii",
            "audiences.change_catalogueentry",
            "Mark custom attributes as personal data",
            scope=ADMIN,
        ),
        # Campaigns (campaigns/): definitions, readiness, lifecycle, the manual review queue.
        Action("campaign.view", "campaigns.view_campaign", "See campaigns", unsafe=False),
        Action("campaign.create", "campaigns.add_campaign", "Create campaigns", scope=WRITE),
        Action("campaign.edit", "campaigns.change_campaign", "Edit campaigns", scope=WRITE, object_permission="change"),
        Action(
            "campaign.delete",
            "campaigns.delete_campaign",
            "Delete a draft campaign",
            scope=WRITE,
            object_permission="change",
        ),
        Action(
            "campaign.share", "campaigns.share_campaign", "Share campaigns", scope=WRITE, object_permission="change"
        ),
        Action(
            "campaign.activate",
            "campaigns.activate_campaign",
            "Activate campaigns",
            scope=PUBLISH,
            object_permission="change",
            approval=True,
        ),
        Action(
            "campaign.pause",
            "campaigns.activate_campaign",
            "Pause campaigns",
            scope=PUBLISH,
            object_permission="change",
        ),
        Action(
            "campaign.resume",
            "campaigns.activate_campaign",
            "Resume campaigns",
            scope=PUBLISH,
            object_permission="change",
        ),
        Action(
            "campaign.cancel",
            "campaigns.activate_campaign",
            "Cancel campaigns",
            scope=PUBLISH,
            object_permission="change",
        ),
        # The manual review queue: sends a vendor outage left waiting. Retry and cancel need
        # the campaign's owning team; the payload is masked unless the role may see PII.
        Action("review_item.view", "campaigns.view_reviewitem", "See the manual review queue", unsafe=False),
        Action(
            "review_item.retry",
            "campaigns.activate_campaign",
            "Retry sends waiting for review",
            scope=PUBLISH,
            object_permission="change",
        ),
        Action(
            "review_item.cancel",
            "campaigns.activate_campaign",
            "Cancel sends waiting for review",
            scope=PUBLISH,
            object_permission="change",
        ),
        Action(
            "review_item.download",
            "campaigns.view_reviewitem",
            "Download the payload of sends waiting for review",
            scope=EXPORT,
        ),
        # Tokens, service accounts and environments (governance/access/, governance/configuration/).
        Action("token.view", "governance.view_apitoken", "See API tokens", scope=ADMIN, unsafe=False),
        Action("token.create", "governance.add_apitoken", "Issue an API token", scope=ADMIN),
        Action("token.revoke", "governance.delete_apitoken", "Revoke an API token", scope=ADMIN),
        Action("service_account.create", "governance.add_serviceaccount", "Create a service account", scope=ADMIN),
        Action("environment.create", "governance.add_environment", "Add an environment", scope=ADMIN),
        Action("environment.change", "governance.change_environment", "Change an environment", scope=ADMIN),
        Action("approval_policy.create", "governance.add_approvalpolicy", "Add an approval policy", scope=ADMIN),
        Action("approval_policy.change", "governance.change_approvalpolicy", "Change an approval policy", scope=ADMIN),
        Action("quota_policy.create", "governance.add_quotapolicy", "Add a quota policy", scope=ADMIN),
        Action("quota_policy.change", "governance.change_quotapolicy", "Change a quota policy", scope=ADMIN),
        Action("team.create", "auth.add_group", "Create a team", scope=ADMIN),
        Action("team.change", "auth.change_group", "Rename a team", scope=ADMIN),
        Action("user.create", "auth.add_user", "Add a person", scope=ADMIN),
        Action("user.access_change", "auth.change_user", "Change a person's roles, teams and access", scope=ADMIN),
        # Names, email and password are audited apart from access, so a refusal and the trail
        # say which of the two changed (governance/configuration/services.py).
        Action("user.change", "auth.change_user", "Change a person's name, email or password", scope=ADMIN),
        # The audit log: any role may call these; what they return is scoped by role
        # (governance/audit/selectors.py: own actions, or everyone's for roles.AUDIT_READ_ALL_ROLES).
        # Exporting writes an `audit.export` event.
        Action("audit.view", None, "Read the audit log", unsafe=False, any_role=True),
        Action("request_log.view", None, "Read your own request history", unsafe=False, any_role=True),
        Action("audit.verify", None, "Verify the audit log's hash chain", unsafe=False, any_role=True),
        Action("audit.export", None, "Export the audit log", scope=EXPORT, any_role=True),
        # Approvals (governance/approvals/): everyone in an environment sees its requests; who may
        # vote is decided by the request's policy steps, not by a model permission.
        Action("approval.view", None, "See approval requests", unsafe=False, any_role=True),
        Action("approval.vote", None, "Approve or reject approval requests", scope=WRITE, any_role=True),
        Action("approval.cancel", None, "Cancel your own approval request", scope=WRITE, any_role=True),
        # Feature flags (governance/flags/). Flags are global; a change is decided and audited in
        # the actor's environment (docs/flags.md).
        Action("flag.view", None, "See feature flags", unsafe=False),
        Action("flag.change", "waffle.change_flag", "Change a feature flag", scope=ADMIN),
        # Adding and deleting have their own permissions in waffle (the admin role may add, only
        # superusers delete: deleting a flag switches it off for everyone). Switches and
        # samples are decided by the same three rows (governance/flags/services.py).
        Action("flag.create", "waffle.add_flag", "Add a feature flag", scope=ADMIN),
        Action("flag.delete", "waffle.delete_flag", "Delete a feature flag", scope=ADMIN),
        Action(
            "flag.disable_personalization",
            "waffle.change_flag",
            "Switch off a flag that affects personalization",
            scope=ADMIN,
            approval=True,
        ),
        Action("flag.meta_change", "governance.change_flagmeta", "Describe a feature flag", scope=ADMIN),
        # Adoption and policy metrics, simulation and proposals (governance/metrics/). A proposal
        # files an approval request that an admin decides; approving it applies the change.
        Action("metrics.view", "governance.view_metrics", "Read adoption and policy metrics", unsafe=False),
        Action(
            "approval_policy.propose",
            "governance.propose_approvalpolicy",
            "Propose an approval-policy change",
            scope=WRITE,
            approval=True,
        ),
        # Domain events, jobs and the service's status (integrations/).
        Action("domain_event.view", "governance.view_outboxevent", "See the timeline of domain events", unsafe=False),
        # Exports of audience members (audiences/exports/). Masked: analysts, operators,
        # compliance reviewers, admins; unmasked PII: compliance reviewers, behind the
        # exports_pii flag, with one compliance reviewer's approval in pilot and production.
        Action("export.view", None, "See exports", unsafe=False, any_role=True),
        Action("export.create", "audiences.add_export", "Export an audience's members (PII masked)", scope=EXPORT),
        Action(
            "export.create_pii",
            "audiences.export_pii",
            "Export an audience's members with PII",
            scope=EXPORT,
            flag="exports_pii",
            approval=True,
        ),
        Action("export.download", None, "Download an export's file", scope=EXPORT, any_role=True),
        Action("export.expire", None, "Delete an expired export's file", any_role=True),
        Action("job.view", "integrations.view_job", "See jobs", unsafe=False),
        Action("status.view", None, "See the health of the service", unsafe=False, any_role=True),
        # Webhooks and their dead letters (integrations/webhooks/). The roles hold view/add/change
        # on subscriptions and no delete: removing a subscription changes what the environment
        # sends, so it needs change.
        Action(
            "webhook.view",
            "integrations.view_webhooksubscription",
            "See webhook subscriptions",
            scope=ADMIN,
            unsafe=False,
        ),
        Action("webhook.create", "integrations.add_webhooksubscription", "Create webhook subscriptions", scope=ADMIN),
        Action(
            "webhook.update", "integrations.change_webhooksubscription", "Change webhook subscriptions", scope=ADMIN
        ),
        Action(
            "webhook.delete", "integrations.change_webhooksubscription", "Delete webhook subscriptions", scope=ADMIN
        ),
        Action("dead_letter.view", "integrations.view_deadletter", "See dead letters", scope=ADMIN, unsafe=False),
        Action("dead_letter.replay", "integrations.change_deadletter", "Replay dead letters", scope=ADMIN),
        Action("dead_letter.discard", "integrations.change_deadletter", "Discard dead letters", scope=ADMIN),
        # Destinations (integrations/destinations/).
        Action("destination.view", "integrations.view_destination", "See destinations", scope=ADMIN, unsafe=False),
        Action("destination.create", "integrations.add_destination", "Create destinations", scope=ADMIN),
        Action("destination.update", "integrations.change_destination", "Change destinations", scope=ADMIN),
        Action("destination.test", "integrations.change_destination", "Test a destination's connection", scope=ADMIN),
        # The exact request(s) an adapter would send for a few sample members (destinations/preview.py).
        Action(
            "destination.preview",
            "campaigns.view_campaign",
            "Preview the payload a destination would receive",
            unsafe=False,
            flag="destination_payload_preview",
        ),
    )
}
