"""Home: my quotas as bars (warning past 80 %), approvals waiting for me, my recent activity
and my recent failures with their hints — in a fixed number of queries."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.definitions import services as audience_services
from governance.actors import Actor
from governance.audit import trail as audit
from governance.limits.quotas import period_bounds
from governance.models import Door, Environment, Outcome, QuotaPeriod, QuotaPolicy, QuotaUsage
from integrations.jobs import services as jobs
from tests.factories import AudienceFactory, AudienceVersionFactory

pytestmark = pytest.mark.django_db


def text(response) -> str:
    """The page's text as a reader sees it: no tags, entities decoded, whitespace collapsed."""
    flat = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))
    for mark in ".,:;)":
        flat = flat.replace(f" {mark}", mark)
    return flat.replace("( ", "(")


def section(response, ident: str) -> str:
    body = response.content.decode()
    start = body.index(f'id="{ident}"')
    return body[start : body.index("</section>", start)]


def use_quota(user, name: str, used: int) -> None:
    policy = QuotaPolicy.objects.get(name=name, user=None, role="", token=None)
    QuotaUsage.objects.create(
        quota=name, subject=f"user:{user.pk}", period_start=period_bounds(policy.period)[0], used=used
    )


def file_archive(user, environment: Environment, name: str, owner: str = "growth") -> object:
    audience = AudienceFactory(environment=environment, name=name, owner_team__name=owner)
    AudienceVersionFactory(audience=audience, live=True)
    actor = Actor(user=user, environment=environment, door=Door.PORTAL)
    return audience_services.audience_delete(actor=actor, audience=audience).approval


# --- quotas ---------------------------------------------------------------------------------


def test_a_quota_at_85_percent_shows_a_warning_bar(portal):
    client = portal("operator")
    use_quota(client.user, "publish", 85)  # 100 a day by default

    response = client.get("/")

    quota = section(response, "quotas")
    publish = quota[quota.index('id="quota-publish"') :]
    publish = publish[: publish.index('<div class="quota"') if '<div class="quota"' in publish else None]
    assert 'data-level="warn"' in publish and 'class="bar warn"' in publish
    assert 'aria-valuenow="85"' in publish and 'aria-valuemax="100"' in publish and "width: 85.0%" in publish
    assert "Warning:" in publish and "85 % of this quota is used; 15 left until it resets." in html.unescape(publish)
    page = text(response)
    assert "85 of 100 used this day (85 %)" in page
    # the other quotas are fine: no warning on them
    assert page.count("Warning:") == 1


def test_a_used_up_quota_is_a_full_bar(portal):
    client = portal("operator")
    QuotaPolicy.objects.create(
        name="publish", action="audience.publish", period=QuotaPeriod.DAY, limit=3, user=client.user
    )
    use_quota(client.user, "publish", 3)

    quota = section(client.get("/"), "quotas")

    assert 'class="bar full"' in quota and "this quota is used up" in quota


def test_below_80_percent_there_is_no_warning(portal):
    client = portal("operator")
    use_quota(client.user, "publish", 79)

    response = client.get("/")

    assert "Warning:" not in text(response) and 'class="bar"' in section(response, "quotas")


# --- approvals waiting ------------------------------------------------------------------------


def test_approvals_waiting_for_me_appear_with_links(portal, pilot, persona):
    request = file_archive(persona("operator"), pilot, "Spring EU buyers")

    approver_home = portal("approver", pilot).get("/")

    waiting = section(approver_home, "waiting-for-me")
    assert f'href="/approvals/{request.pk}/"' in waiting
    assert "Archive the published audience &#x27;Spring EU buyers&#x27;" in waiting
    assert "asked by p-operator" in waiting
    # not for the requester, nor for someone whose roles fill no step
    assert "Nothing waits for your vote." in section(portal("operator", pilot).get("/"), "waiting-for-me")
    assert "Nothing waits for your vote." in section(portal("analyst", pilot).get("/"), "waiting-for-me")


# --- activity and failures --------------------------------------------------------------------


def test_my_recent_activity_in_plain_words(portal, pilot, persona):
    client = portal("operator", pilot)
    file_archive(client.user, pilot, "Spring EU buyers")
    file_archive(persona("operator2"), pilot, "Not mine", owner="retention")

    activity = html.unescape(section(client.get("/"), "my-activity"))

    assert "p-operator asked to archive 'Spring EU buyers' — waits for approval (request" in activity
    assert "Not mine" not in activity
    assert 'href="/audit/?actor=p-operator"' in activity


def test_recent_failures_show_the_job_hint_and_the_refusal_reason(portal, sandbox, persona):
    client = portal("operator")
    audience = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    job = jobs.job_create(environment=sandbox, kind="audience.publish", target=audience, requested_by=client.user)
    jobs.job_claim(job.pk)
    jobs.job_fail(
        job,
        error=jobs.note("rules_invalid", "The rules name an attribute that no longer exists.", "Edit the rules."),
    )
    someone_elses = jobs.job_create(environment=sandbox, kind="audience.publish", requested_by=persona("developer"))
    jobs.job_claim(someone_elses.pk)
    jobs.job_fail(someone_elses, error=jobs.note("x", "Not yours.", "No."))
    audit.record(
        Actor(user=client.user, environment=sandbox, door=Door.API),
        "audience.edit",
        AudienceFactory(environment=sandbox, name="Theirs", owner_team__name="retention"),
        outcome=Outcome.DENIED,
        reasons=["Theirs is owned by the team 'retention'; you are not in it."],
    )

    failures = html.unescape(section(client.get("/"), "recent-failures"))

    assert f'data-job-id="{job.pk}"' in failures and f'data-job-id="{someone_elses.pk}"' not in failures
    assert "Publish job" in failures and f'href="/audiences/{audience.pk}/"' in failures
    assert "The rules name an attribute that no longer exists." in failures and "Hint: Edit the rules." in failures
    assert (
        "p-operator tried to change 'Theirs' — denied: Theirs is owned by the team 'retention'; you are not in it."
        in failures
    )


def test_nothing_failed_says_so(portal):
    assert "Nothing of yours failed or was refused lately." in text(portal("analyst").get("/"))


def test_someone_without_a_role_sees_why_the_cards_are_empty(portal):
    response = portal("nobody").get("/")

    assert response.status_code == 200
    page = text(response)
    assert "You may not see approval requests" in page and "You may not read the audit log" in page


def test_home_answers_in_a_fixed_number_of_queries(portal, pilot, persona):
    client = portal("approver", pilot)
    operator = persona("operator")

    def queries() -> list[dict]:
        client.get("/")  # warm: new rows bumped the permission cache
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/").status_code == 200
        return captured.captured_queries

    file_archive(operator, pilot, "Audience 0")
    few = queries()
    for index in range(1, 8):
        file_archive(operator, pilot, f"Audience {index}")
        audit.record(Actor(user=client.user, environment=pilot, door=Door.PORTAL), "audience.edit", None)
    many = queries()

    assert len(many) == len(few), [q["sql"] for q in many]
    assert len(many) <= 14, [q["sql"] for q in many]
