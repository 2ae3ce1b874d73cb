from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from governance.roles import sync_roles_after_migrate

        # Keep the role groups' permissions equal to governance/roles.py after every migrate,
        # so a model added later reaches its roles without a hand-written data migration.
        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="governance.sync_roles")
