"""The audiences app: profiles and consent, audience definitions, publishing, suppression lists.

`ready()` registers, in every process (a Celery worker never loads the URL conf), how the
actions that may wait for approval run once approved — publish, rollback, archive, a change
of the global suppression list — the policy hook that keeps sharing and transfers with the owners, and
the receiver that gives every new environment its global suppression list.
"""

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_save


def _environment_saved(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """A new environment gets its global suppression list in the same transaction, whichever
    way it was created (the admin's environment_save, a command, a test): no environment
    is ever without one. (Existing ones got theirs from migration 0011.)"""
    if created and not raw:
        from audiences.suppressions import services as suppressions

        suppressions.global_list_ensure(environment=instance)


class AudiencesConfig(AppConfig):
    name = "audiences"
    verbose_name = "Audiences and profiles"

    def ready(self) -> None:
        from audiences.definitions import services as definitions
        from audiences.exports import services as exports
        from audiences.publishing import services as publishing
        from audiences.suppressions import services as suppressions
        from governance import policy
        from governance.approvals import register_change_describer, register_executor

        register_executor("audience.archive", definitions.execute_archive, fingerprint=definitions.audience_fingerprint)
        register_executor(publishing.PUBLISH, publishing.execute_publish, fingerprint=publishing.publish_fingerprint)
        register_change_describer(publishing.PUBLISH, publishing.publish_changes)
        register_executor(publishing.ROLLBACK, publishing.execute_rollback, fingerprint=publishing.rollback_fingerprint)
        register_executor("suppression.change_global", suppressions.execute_global_change)
        register_executor(exports.CREATE_PII, exports.execute_export_pii, fingerprint=exports.export_fingerprint)
        register_change_describer(exports.CREATE_PII, exports.export_change_described)
        policy.register_hook("audience.share", definitions.share_needs_owner)
        policy.register_hook("audience.transfer", definitions.share_needs_owner)
        # Publishes, rollbacks and exports are heavy work: they wait for a job slot of their environment.
        from integrations.jobs import slots

        slots.register_heavy(publishing.PUBLISH, "audiences.publish")
        slots.register_heavy(publishing.ROLLBACK, "audiences.publish")
        slots.register_heavy(exports.JOB_KIND, "audiences.export")
        policy.register_hook("audience.promote", definitions.promote_not_down)
        from celery.signals import worker_ready

        from audiences.publishing.runner import recover_on_worker_start

        # A worker that starts sweeps for publish jobs a killed worker left running.
        worker_ready.connect(recover_on_worker_start, weak=False, dispatch_uid="audiences.publish_recover_on_start")
        from governance.models import Environment

        post_save.connect(_environment_saved, sender=Environment, dispatch_uid="audiences.global_suppression_list")
