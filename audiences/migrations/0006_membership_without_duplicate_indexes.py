"""Membership: drop the two indexes Django made for its foreign keys. The composite primary
key (version_id, profile_id) already serves lookups by version, and `membership_profile`
those by profile; each extra index cost every published member a write.

Only the indexes go (DROP INDEX): letting AlterField do it would also drop and re-add both
foreign keys, validating every membership row again under lock."""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = ("audiences_membership_profile_id_73ff776e", "audiences_membership_version_id_da4617cd")


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0005_suppressions_restrictions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="membership",
                    name="profile",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="audiences.profile",
                    ),
                ),
                migrations.AlterField(
                    model_name="membership",
                    name="version",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to="audiences.audienceversion",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{INDEXES[0]}"',
                    reverse_sql=f'CREATE INDEX "{INDEXES[0]}" ON "audiences_membership" ("profile_id")',
                ),
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{INDEXES[1]}"',
                    reverse_sql=f'CREATE INDEX "{INDEXES[1]}" ON "audiences_membership" ("version_id")',
                ),
            ],
        ),
    ]
