from django.apps import AppConfig


class AudiencesConfig(AppConfig):
    name = "audiences"
    verbose_name = "Audiences and profiles"

    def ready(self) -> None:
        # Register the executors of approved archives, publishes, rollbacks and global suppression
        # changes, the `audience.rollback` action and the sharing hook, in every process (a Celery
        # worker never loads the URL conf).
        from audiences import audience_services, publish, suppressions  # noqa: F401
