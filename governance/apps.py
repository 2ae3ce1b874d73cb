from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from governance import permcache
        from governance.approvals import register_executor
        from governance.flags import services as flag_services
        from governance.roles import sync_roles_after_migrate

        # Keep the role groups' permissions equal to governance/roles.py after every migrate,
        # so a model added later reaches its roles without a hand-written data migration.
        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="governance.sync_roles")
        permcache.connect()
        _register_history()
        # How an approved personalization switch-off runs, in every process (a Celery worker
        # imports no view and no services module by itself).
        register_executor(
            flag_services.DISABLE_PERSONALIZATION,
            flag_services.execute_disable_personalization,
            fingerprint=flag_services.flag_fingerprint,
        )
        # Approval-policy proposals (marketing ops) wait for an admin and are applied when approved.
        from governance.metrics import services as metrics_services
        from governance.policy.engine import register_hook

        register_hook(metrics_services.PROPOSE, metrics_services.proposal_needs_an_admin)
        register_executor(
            metrics_services.PROPOSE,
            metrics_services.execute_proposal,
            fingerprint=metrics_services.policy_fingerprint,
            load=metrics_services.load_proposal_target,
        )


def _register_history() -> None:
    """Field history for governed models we do not own: waffle's flags, switches and
    samples, and the role groups with their permissions. Changes made around the services
    (a shell, waffle's commands) are still in this history, though not in the audit trail."""
    from django.contrib.auth.models import Group
    from simple_history import register
    from simple_history.exceptions import MultipleRegistrationsError
    from waffle.models import Flag, Sample, Switch

    for model, extra in ((Flag, {}), (Switch, {}), (Sample, {}), (Group, {"m2m_fields": ["permissions"]})):
        try:
            register(model, app="governance", **extra)
        except MultipleRegistrationsError:
            pass
