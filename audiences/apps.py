from django.apps import AppConfig


class AudiencesConfig(AppConfig):
    name = "audiences"
    verbose_name = "Audiences and profiles"

    def ready(self) -> None:
        # Register the executors of approved archives, publishes, rollbacks and global suppression
        # changes, and the sharing rule, in every process (a Celery worker never loads the URL conf).
        from audiences.definitions import services as audience_services
        from governance import policy

        policy.register_hook("audience.share", audience_services.share_needs_owner)
