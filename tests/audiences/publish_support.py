"""Helpers for the publish, versions and memberships tests (no tests of its own): people with
consent, and running a publish or rollback job to its end in the test's process.

Audiences come from tests/factories.py (AudienceFactory: EU customers by email, growth's).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from audiences.models import Audience, AudienceVersion, Consent, Membership, Profile
from audiences.publishing.runner import publish_job_run
from audiences.publishing.services import VersionBuild, audience_publish, audience_rollback
from audiences.reach import reachable_queryset
from governance.actors import Actor
from governance.approvals import ActionOutcome
from governance.models import Environment
from integrations.models import Job
from tests.factories import ProfileFactory


def people(
    environment: Environment,
    prefix: str,
    count: int,
    *,
    region: str = "EU",
    consent: str | None = "granted",
    channel: str = "email",
) -> list[Profile]:
    """`count` profiles `<prefix>-<n>` in `region`, with `consent` on `channel` (None: no row).

    Kept beside ProfileFactory for its names: the tests compare members by these ids
    (`members_of(version) == {"eu-0", "eu-1"}`)."""
    return [
        ProfileFactory(
            environment=environment,
            external_id=f"{prefix}-{n}",
            region=region,
            consent=consent,
            consent__channel=channel,
        )
        for n in range(count)
    ]


def set_consent(profiles: Iterable[Profile], status: str, channel: str = "email") -> None:
    for profile in profiles:
        Consent.objects.update_or_create(
            profile=profile,
            channel=channel,
            defaults={"status": status, "source": "test", "captured_at": timezone.now()},
        )


def members_of(version: AudienceVersion | int) -> set[str]:
    version_id = version if isinstance(version, int) else version.pk
    return set(Membership.objects.filter(version_id=version_id).values_list("profile__external_id", flat=True))


def reachable_now(target: Audience) -> set[str]:
    return set(
        reachable_queryset(target.environment, target.rules, target.channel).values_list("external_id", flat=True)
    )


def run(job: Job | None, **kwargs: Any) -> Job:
    assert job is not None
    finished = publish_job_run(job.pk, **kwargs)
    assert finished is not None
    return finished


def publish_now(actor: Actor, target: Audience) -> tuple[ActionOutcome[VersionBuild], Job]:
    """Publish and run the job here (the task is enqueued after commit, which tests skip)."""
    outcome = audience_publish(actor=actor, audience=target)
    assert outcome.result is not None
    return outcome, run(outcome.result.job)


def rollback_now(actor: Actor, target: Audience, version: int) -> tuple[ActionOutcome[VersionBuild], Job]:
    outcome = audience_rollback(actor=actor, audience=Audience.objects.get(pk=target.pk), version=version)
    assert outcome.result is not None
    return outcome, run(outcome.result.job)


def fresh(target: Audience) -> Audience:
    return Audience.objects.select_related("live_version", "environment", "owner_team").get(pk=target.pk)
