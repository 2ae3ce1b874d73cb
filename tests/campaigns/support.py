"""Helpers for the campaigns tests (no tests of its own): a published audience with members,
a destination, a campaign, and running its send job in the test's process."""

from __future__ import annotations

from typing import Any

from audiences.models import Audience, Profile
from campaigns.definitions.services import campaign_create
from campaigns.models import Campaign, Send
from campaigns.sending.runner import send_job_run
from governance.actors import Actor
from governance.models import Environment
from integrations.models import Destination, Job
from tests.audiences.publish_support import people
from tests.factories import AudienceFactory, AudienceVersionFactory, DestinationFactory, team

ASSETS = {"subject": "Hello {{first_name}}", "body": "Hi {{first_name}}, come back.", "sender": "news@example.test"}


def audience_with(
    environment: Environment, members: list[Profile], *, team_name: str = "growth", channel: str = "email"
) -> Audience:
    audience = AudienceFactory(environment=environment, owner_team=team(team_name), channel=channel)
    AudienceVersionFactory(audience=audience, memberships=members, live=True)
    return Audience.objects.select_related("live_version").get(pk=audience.pk)


def drop(environment: Environment, directory: str, **kwargs: Any) -> Destination:
    return DestinationFactory(
        environment=environment, adapter="file", config={"directory": directory, "format": "jsonl"}, **kwargs
    )


def campaign_for(actor: Actor, audience: Audience, destination: Destination, **overrides: Any) -> Campaign:
    values: dict[str, Any] = {
        "name": "Winback",
        "channel": audience.channel,
        "audience": audience.pk,
        "destination": destination.pk,
        "purpose": "winback",
        "assets": dict(ASSETS),
        "owner_team": "growth",
    }
    values.update(overrides)
    return campaign_create(actor=actor, **values)


def run(job: Job | int | None, **kwargs: Any) -> Job:
    assert job is not None
    finished = send_job_run(job if isinstance(job, int) else job.pk, **kwargs)
    assert finished is not None
    return finished


def states(campaign: Campaign) -> dict[str, int]:
    out: dict[str, int] = {}
    for state in Send.objects.filter(campaign=campaign).values_list("state", flat=True):
        out[state] = out.get(state, 0) + 1
    return out


__all__ = ["ASSETS", "audience_with", "campaign_for", "drop", "people", "run", "states"]
