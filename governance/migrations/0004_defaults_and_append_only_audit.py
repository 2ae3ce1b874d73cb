"""Default approval and quota policies (PRODUCT.md §5–§6), and an append-only audit table
on PostgreSQL: a trigger refuses UPDATE, DELETE and TRUNCATE on governance_auditevent.

The trigger lets a session through only when it has set
`marketerapi.audit_maintenance = 'on'` — the test suite does, to empty tables between
tests; the application never does.
"""

from django.db import migrations

APPROVER = ["approver"]
DEV_OR_ADMIN = ["developer", "admin"]

APPROVAL_DEFAULTS = [
    # action, metric, threshold, steps, description
    ("audience.publish", "reach", 50_000, [APPROVER], "Publishing an audience that reaches more than 50,000 people"),
    ("campaign.activate", "", None, [APPROVER], "Activating a campaign"),
    (
        "campaign.activate",
        "recipients",
        100_000,
        [APPROVER, DEV_OR_ADMIN],
        "Activating a campaign to more than 100,000 recipients (dual control)",
    ),
    ("audience.archive", "", None, [APPROVER, DEV_OR_ADMIN], "Deleting or archiving a published audience"),
    ("suppression.change_global", "", None, [APPROVER, DEV_OR_ADMIN], "Changing the global suppression list"),
    ("export.create_pii", "", None, [["compliance_reviewer"]], "Exporting with PII"),
    ("flag.disable_personalization", "", None, [APPROVER, ["admin"]], "Switching off a flag that affects personalization"),
]

QUOTA_DEFAULTS = [
    ("export-masked", "export.create", "Masked exports per user", "month", 50),
    ("export-pii", "export.create_pii", "Exports with PII per user", "month", 10),
    ("publish", "audience.publish", "Audience publishes per user", "day", 100),
]

TRIGGER_SQL = """
CREATE OR REPLACE FUNCTION governance_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('marketerapi.audit_maintenance', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'governance_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit events are never changed or deleted; record a new event instead.';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_append_only_rows ON governance_auditevent;
CREATE TRIGGER audit_append_only_rows BEFORE UPDATE OR DELETE ON governance_auditevent
    FOR EACH ROW EXECUTE FUNCTION governance_audit_append_only();
DROP TRIGGER IF EXISTS audit_append_only_truncate ON governance_auditevent;
CREATE TRIGGER audit_append_only_truncate BEFORE TRUNCATE ON governance_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION governance_audit_append_only();
"""

# The row trigger returns NULL under maintenance, which would silently skip the row;
# for maintenance we want the operation to happen, so the function returns OLD there.
TRIGGER_SQL = TRIGGER_SQL.replace(
    "IF coalesce(current_setting('marketerapi.audit_maintenance', true), '') = 'on' THEN\n        RETURN NULL;",
    "IF coalesce(current_setting('marketerapi.audit_maintenance', true), '') = 'on' THEN\n"
    "        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;\n"
    "        IF TG_OP = 'UPDATE' THEN RETURN NEW; END IF;\n"
    "        RETURN NULL;",
)

DROP_SQL = """
DROP TRIGGER IF EXISTS audit_append_only_rows ON governance_auditevent;
DROP TRIGGER IF EXISTS audit_append_only_truncate ON governance_auditevent;
DROP FUNCTION IF EXISTS governance_audit_append_only();
"""


def create_defaults(apps, schema_editor):
    Environment = apps.get_model("governance", "Environment")
    ApprovalPolicy = apps.get_model("governance", "ApprovalPolicy")
    QuotaPolicy = apps.get_model("governance", "QuotaPolicy")
    for env in Environment.objects.filter(slug__in=["pilot", "production"]):
        for action, metric, threshold, steps, description in APPROVAL_DEFAULTS:
            ApprovalPolicy.objects.get_or_create(
                environment=env,
                action=action,
                metric=metric,
                threshold=threshold,
                defaults={"steps": steps, "description": description},
            )
    for name, action, description, period, limit in QUOTA_DEFAULTS:
        QuotaPolicy.objects.get_or_create(
            name=name,
            role="",
            user=None,
            token=None,
            environment=None,
            defaults={"action": action, "description": description, "period": period, "limit": limit},
        )


def add_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER_SQL, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("governance", "0003_governance_models")]

    operations = [
        migrations.RunPython(create_defaults, migrations.RunPython.noop),
        migrations.RunPython(add_trigger, drop_trigger),
    ]
