"""The product's capability flags (issue 13), each with its owner and description, on for
everyone in sandboxes (`FlagMeta.on_in_sandbox`) and, elsewhere, off until an admin turns
one on for a team (its groups), a percentage or everyone. Created once: an admin's later
changes are never overwritten, and a flag an admin deleted is not brought back by a
later migrate (only by this migration on a fresh install)."""

from django.db import migrations, models

CAPABILITIES = [
    # name, owner, description
    ("channel_sms", "messaging", "Campaigns on the SMS channel: creating, checking and activating them."),
    ("channel_push", "messaging", "Campaigns on the push channel: creating, checking and activating them."),
    (
        "exports_pii",
        "compliance",
        "Exports of audience members with PII (emails, phones, names); each needs a compliance reviewer's approval.",
    ),
    ("campaign_scheduling", "messaging", "Scheduling a campaign for a later time instead of sending it now."),
    (
        "destination_payload_preview",
        "integrations",
        "Previewing the exact request a destination's adapter would send for a few sample members.",
    ),
]


def create_flags(apps, schema_editor):
    Flag = apps.get_model("waffle", "Flag")
    FlagMeta = apps.get_model("governance", "FlagMeta")
    for name, owner, description in CAPABILITIES:
        # everyone unset and superusers off: who has it is the sandbox rule, then its groups.
        flag, created = Flag.objects.get_or_create(
            name=name, defaults={"everyone": None, "superusers": False, "note": description}
        )
        if created:
            FlagMeta.objects.get_or_create(
                flag=flag, defaults={"owner": owner, "description": description, "on_in_sandbox": True}
            )


def remove_flags(apps, schema_editor):
    Flag = apps.get_model("waffle", "Flag")
    Flag.objects.filter(name__in=[name for name, _, _ in CAPABILITIES]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("governance", "0005_outbox_event_from_integrations"),
        ("waffle", "0004_update_everyone_nullbooleanfield"),
    ]

    operations = [
        migrations.AddField(
            model_name='flagmeta',
            name='on_in_sandbox',
            field=models.BooleanField(default=False, help_text='On for everyone in sandbox environments, whatever the rollout says (unless Everyone is No).'),
        ),
        migrations.AddField(
            model_name='historicalflagmeta',
            name='on_in_sandbox',
            field=models.BooleanField(default=False, help_text='On for everyone in sandbox environments, whatever the rollout says (unless Everyone is No).'),
        ),
        migrations.RunPython(create_flags, remove_flags),
    ]
