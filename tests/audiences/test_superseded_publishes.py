"""Superseded publishes (issue 12): a publish replaced by a newer one before it was built
gives its publish quota unit back, and ends in one terminal state — `cancelled`, "superseded
by job N" — whether a worker had started it or not."""

from __future__ import annotations

import itertools

import pytest
from django.db import transaction
from django.utils import timezone

from audiences.models import AudienceVersion, VersionState
from audiences.publishing import runner
from audiences.publishing import services as publish
from governance.limits.services import quota_consume, quota_refund
from governance.models import QuotaUsage
from integrations.models import Job, JobState
from tests.audiences.publish_support import fresh, people, run
from tests.factories import AudienceFactory

pytestmark = pytest.mark.django_db


def used(quota: str = "publish") -> int:
    return sum(QuotaUsage.objects.filter(quota=quota).values_list("used", flat=True))


def test_superseded_queued_publishes_give_their_quota_back_and_end_cancelled(actor, sandbox):
    people(sandbox, "eu", 1)
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)

    jobs = [publish.audience_publish(actor=operator, audience=fresh(target)).result.job for _ in range(4)]

    assert used() == 1  # only the one that will be built is charged
    states = list(Job.objects.filter(pk__in=[j.pk for j in jobs[:3]]).order_by("pk").values_list("state", "result"))
    assert [state for state, _ in states] == [JobState.CANCELLED] * 3
    assert [result["superseded_by"] for _, result in states] == [j.pk for j in jobs[1:]]
    for old, new in itertools.pairwise(jobs):
        error = Job.objects.get(pk=old.pk).errors[-1]
        assert error["code"] == "superseded" and f"superseded by job {new.pk}" in error["message"]
    assert run(jobs[-1]).state == JobState.SUCCEEDED


def test_a_dead_workers_publish_superseded_ends_cancelled_too_with_its_quota_back(actor, sandbox):
    people(sandbox, "eu", 1)
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    first = publish.audience_publish(actor=operator, audience=target).result.job
    Job.objects.filter(pk=first.pk).update(
        state=JobState.RUNNING, heartbeat_at=timezone.now() - runner.STALE_AFTER * 2, attempts=1
    )

    second = publish.audience_publish(actor=operator, audience=fresh(target)).result.job

    old = Job.objects.get(pk=first.pk)
    assert old.state == JobState.CANCELLED and old.result["superseded_by"] == second.pk
    assert "worker had stopped" in old.errors[-1]["message"]
    assert used() == 1
    assert AudienceVersion.objects.get(job=old).state == VersionState.FAILED


def test_a_finished_job_is_not_refunded_twice(actor, sandbox):
    people(sandbox, "eu", 1)
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    first = publish.audience_publish(actor=operator, audience=target).result.job
    assert run(first).state == JobState.SUCCEEDED
    publish.audience_publish(actor=operator, audience=fresh(target))
    assert used() == 2


def test_quota_refund_never_goes_below_zero(actor, sandbox):
    operator = actor("operator")
    with transaction.atomic():
        status = quota_consume(operator, "publish")
    assert status is not None
    with transaction.atomic():
        assert quota_refund(name="publish", subject=status.subject, period_start=status.period_start)
        assert not quota_refund(name="publish", subject=status.subject, period_start=status.period_start)
    assert used() == 0
