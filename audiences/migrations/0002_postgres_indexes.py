"""PostgreSQL-only indexes: GIN over custom attributes and event properties for rules on
`attributes.*` keys. SQLite (development) goes without them."""

from django.db import migrations

FORWARD = [
    "CREATE INDEX IF NOT EXISTS profile_attributes_gin ON audiences_profile USING gin (attributes jsonb_path_ops)",
]
BACKWARD = ["DROP INDEX IF EXISTS profile_attributes_gin"]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in FORWARD:
            schema_editor.execute(sql)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in BACKWARD:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("audiences", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
