"""The audiences app: profiles and consent, audience definitions, publishing, suppression lists.

`ready()` registers, in every process (a Celery worker never loads the URL conf), how the
actions that may wait for approval run once approved — publish, rollback, archive, a change
of the global suppression list — and the policy hook that keeps sharing with the owners.
"""

from django.apps import AppConfig


class AudiencesConfig(AppConfig):
    name = "audiences"
    verbose_name = "Audiences and profiles"

    def ready(self) -> None:
        from audiences.definitions import services as definitions
        from audiences.publishing import services as publishing
        from audiences.suppressions import services as suppressions
        from governance import policy
        from governance.approvals import register_executor

        register_executor("audience.archive", definitions.execute_archive, fingerprint=definitions.audience_fingerprint)
        register_executor(publishing.PUBLISH, publishing.execute_publish, fingerprint=publishing.publish_fingerprint)
        register_executor(publishing.ROLLBACK, publishing.execute_rollback, fingerprint=publishing.rollback_fingerprint)
        register_executor("suppression.change_global", suppressions.execute_global_change)
        policy.register_hook("audience.share", definitions.share_needs_owner)
