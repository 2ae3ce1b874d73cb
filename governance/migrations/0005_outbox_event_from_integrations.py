"""The outbox moves from integrations to governance, the ground every app writes its
domain events to (integrations relays them). State only: the table keeps its name
(integrations_outboxevent), its rows and its indexes; nothing is rewritten.

The content type is renamed in place, so the permission `view_outboxevent` (and every
group holding it) follows the model instead of being recreated.
"""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def rename_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if ContentType.objects.filter(app_label="governance", model="outboxevent").exists():
        return
    ContentType.objects.filter(app_label="integrations", model="outboxevent").update(app_label="governance")


def restore_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="governance", model="outboxevent").update(app_label="integrations")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("governance", "0004_defaults_and_append_only_audit"),
        ("integrations", "0003_destination_push_plural"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="OutboxEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("event_id", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                        ("type", models.CharField(max_length=64)),
                        ("aggregate_type", models.CharField(max_length=64)),
                        ("aggregate_id", models.CharField(max_length=64)),
                        ("occurred_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("data", models.JSONField(default=dict)),
                        ("dispatched_at", models.DateTimeField(blank=True, null=True)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("last_error", models.TextField(blank=True)),
                        (
                            "environment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="outbox_events",
                                to="governance.environment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "integrations_outboxevent",
                        "ordering": ["-id"],
                        "indexes": [
                            models.Index(fields=["environment", "-id"], name="outbox_env_id"),
                            models.Index(fields=["environment", "type", "-id"], name="outbox_env_type"),
                            models.Index(
                                condition=models.Q(("dispatched_at__isnull", True)), fields=["id"], name="outbox_pending"
                            ),
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(rename_content_type, restore_content_type),
    ]
