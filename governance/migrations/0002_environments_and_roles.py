"""Create the three environments and the six role groups with their permissions."""

from typing import Any

from django.db import migrations

ENVIRONMENTS: list[dict[str, Any]] = [
    {
        "slug": "sandbox",
        "name": "Sandbox",
        "purpose": "Try anything on synthetic data. Never requires approval, never reaches a real vendor.",
        "data_kind": "synthetic",
        "time_zone": "UTC",
        "change_windows": [],
    },
    {
        "slug": "pilot",
        "name": "Pilot",
        "purpose": "A constrained slice of real customers for trying changes with approval.",
        "data_kind": "constrained",
        "time_zone": "UTC",
        "change_windows": [],
    },
    {
        "slug": "production",
        "name": "Production",
        "purpose": "Real customers. Publishes and activations need approval and run inside change windows.",
        "data_kind": "real",
        "time_zone": "Europe/London",
        "change_windows": [{"days": [0, 1, 2, 3], "start": "09:00", "end": "17:00"}],
    },
]


def create_environments(apps, schema_editor):
    Environment = apps.get_model("governance", "Environment")
    for spec in ENVIRONMENTS:
        Environment.objects.update_or_create(slug=spec["slug"], defaults=spec)


def create_roles(apps, schema_editor):
    from governance.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0001_initial"),
        ("audiences", "0001_initial"),
        ("integrations", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("waffle", "0004_update_everyone_nullbooleanfield"),
    ]

    operations = [
        migrations.RunPython(create_environments, migrations.RunPython.noop),
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
