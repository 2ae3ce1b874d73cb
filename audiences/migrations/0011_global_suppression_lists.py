"""Every environment has its global suppression list (docs/audiences.md says so): until now
it was made by the first change of it, so `GET /suppressions/` was empty before that. The
environments that exist get theirs here; new ones get theirs when they are created
(audiences/apps.py). Set-based: one read of the environments without one, one insert.
Reversing it removes the global lists that are still empty."""

from django.db import migrations

DESCRIPTION = "People never to contact in this environment"


def create(apps, schema_editor):
    Environment = apps.get_model("governance", "Environment")
    SuppressionList = apps.get_model("audiences", "SuppressionList")
    missing = Environment.objects.exclude(suppression_lists__is_global=True).values_list("pk", flat=True)
    SuppressionList.objects.bulk_create(
        [SuppressionList(environment_id=pk, name="global", is_global=True, description=DESCRIPTION) for pk in missing]
    )


def remove_empty(apps, schema_editor):
    SuppressionList = apps.get_model("audiences", "SuppressionList")
    SuppressionList.objects.filter(is_global=True, entries__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0010_catalogue_backfill"),
        ("governance", "0005_outbox_event_from_integrations"),
    ]

    operations = [migrations.RunPython(create, remove_empty)]
