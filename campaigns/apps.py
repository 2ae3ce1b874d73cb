"""The campaigns app: campaigns, readiness, activation and sending, the manual review queue.

`ready()` registers, in every process, how an approved activation runs, the policy hook
that keeps sharing with the owners, and the send job
as heavy work sharing the environment's job slots (integrations/jobs/slots.py).
"""

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from campaigns.definitions import services as definitions
        from campaigns.sending import services as sending
        from governance import policy
        from governance.approvals import register_executor
        from integrations.jobs import slots

        register_executor(sending.ACTIVATE, sending.execute_activate, fingerprint=sending.activate_fingerprint)
        policy.register_hook("campaign.share", definitions.share_needs_owner)
        # A send is heavy work: it shares the environment's job slots with publishes and exports.
        slots.register_heavy(sending.SEND_JOB, "campaigns.send")
