"""The outbox model now lives in governance (governance/migrations/0005): deliveries point
at it there, and integrations forgets it. State only: the table, its rows and the foreign
key constraint stay as they are."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0005_outbox_event_from_integrations"),
        ("integrations", "0003_destination_push_plural"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name="webhookdelivery",
                    name="event",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="governance.outboxevent",
                    ),
                ),
                migrations.DeleteModel(name="OutboxEvent"),
            ],
        ),
    ]
