"""Versions and rollback: GET /audiences/{id}/versions, POST /audiences/{id}/rollback, and the
retention of member rows (the newest AUDIENCE_VERSIONS_WITH_MEMBERS versions and the live one)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.models import AudienceVersion, Membership, Profile
from audiences.publishing import runner
from governance.models import AuditEvent, OutboxEvent
from integrations.models import DestinationPush, JobState
from tests.audiences.publish_support import (
    fresh,
    members_of,
    people,
    publish_now,
    rollback_now,
    set_consent,
)
from tests.factories import AudienceFactory, AudienceVersionFactory, DestinationFactory
from tests.refusals import denied_event, refused

pytestmark = pytest.mark.django_db


def _three_versions(actor, sandbox):
    """v1 = a, v2 = a + b, v3 = b + c (a withdrew consent)."""
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    a = people(sandbox, "a", 2)
    publish_now(operator, target)
    b = people(sandbox, "b", 2)
    publish_now(operator, fresh(target))
    set_consent(a, "denied")
    c = people(sandbox, "c", 1)
    publish_now(operator, fresh(target))
    return operator, fresh(target), a, b, c


# --- the list --------------------------------------------------------------------------------------


def test_versions_list_counts_diff_sizes_who_and_when(api, actor, sandbox, django_assert_max_num_queries):
    _, target, *_ = _three_versions(actor, sandbox)
    client = api("analyst")

    response = client.get(f"/api/v1/audiences/{target.pk}/versions")

    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert [r["number"] for r in rows] == [3, 2, 1]
    assert [r["is_live"] for r in rows] == [True, False, False]
    assert [(r["members"], r["added"], r["removed"]) for r in rows] == [(3, 1, 2), (4, 2, 0), (2, 2, 0)]
    assert all(r["state"] == "ready" and r["members_retained"] for r in rows)
    assert rows[0]["created_by"] == "p-operator" and rows[0]["built_at"] and rows[0]["job"]
    assert rows[0]["waterfall"][0]["step"] == "matching"
    assert rows[0]["rules"] == target.rules


def test_the_versions_list_costs_the_same_for_one_version_or_many(api, actor, sandbox):
    operator = actor("operator")
    people(sandbox, "eu", 1)
    one, many = AudienceFactory(environment=sandbox, name="One"), AudienceFactory(environment=sandbox, name="Many")
    publish_now(operator, one)
    for _ in range(4):
        publish_now(operator, fresh(many))
    client = api("analyst")
    client.get(f"/api/v1/audiences/{one.pk}/versions")  # warm the permission cache

    counts = []
    for target in (one, many):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"/api/v1/audiences/{target.pk}/versions").status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_versions_of_another_environment_are_a_404(api, sandbox, pilot):
    target = AudienceFactory(environment=sandbox)
    response = api("analyst", pilot).get(f"/api/v1/audiences/{target.pk}/versions")
    refused(response, 404, "audience_not_found")


# --- rollback -------------------------------------------------------------------------------------


def test_rollback_restores_the_exact_membership_of_a_kept_version(api, actor, sandbox, settings, tmp_path):
    settings.DESTINATION_SANDBOX_FILE_ROOTS = [str(tmp_path)]
    _, target, a, b, c = _three_versions(actor, sandbox)
    set_consent(a, "granted")  # everyone of v2 may be reached again
    v2 = AudienceVersion.objects.get(audience=target, number=2)
    drop = DestinationFactory(environment=sandbox, name="drop", config={"directory": str(tmp_path), "format": "jsonl"})
    client = api("operator")

    response = client.post(f"/api/v1/audiences/{target.pk}/rollback", {"version": 2}, format="json")

    assert response.status_code == 202, response.content
    assert response.json()["warnings"] == []
    job = runner.publish_job_run(response.json()["job"]["id"])
    assert job.state == JobState.SUCCEEDED, job.errors
    target = fresh(target)
    v4 = target.live_version
    assert v4.number == 4 and v4.rebuilt_from_id == v2.pk and v4.rules == v2.rules
    assert members_of(v4) == members_of(v2) == {p.external_id for p in a + b}
    # the diff against v3 (b + c): a back, c out — audited, emitted and pushed
    assert (v4.added, v4.removed) == (2, 1)
    assert AuditEvent.objects.filter(action="audience.rolled_back").count() == 1
    assert AuditEvent.objects.filter(action="audience.rollback").count() == 1
    event = OutboxEvent.objects.get(type="audience.rolled_back")
    assert event.data["rolled_back_to"] == 2 and event.data["version"]["number"] == 4
    pushes = DestinationPush.objects.filter(job_id=job.pk, destination=drop)
    assert sorted(x for p in pushes for x in p.payload["added"]) == sorted(p.external_id for p in a)
    assert [x for p in pushes for x in p.payload["removed"]] == [c[0].external_id]


def test_rollback_never_brings_back_someone_who_withdrew_consent(actor, sandbox):
    operator, target, _, b, _ = _three_versions(actor, sandbox)  # a withdrew consent before v3

    _, job = rollback_now(operator, target, 2)

    assert members_of(fresh(target).live_version) == {p.external_id for p in b}
    assert [w["code"] for w in job.warnings] == ["members_no_longer_reachable"]
    assert job.state == JobState.PARTIALLY_SUCCEEDED


def test_rollback_never_copies_someone_whose_address_is_gone(actor, sandbox):
    """A rollback copies the kept members through the one definition of reach: whoever has
    no email address any more is left out, with the warning (issue 11, item 2)."""
    operator, target, a, b, _ = _three_versions(actor, sandbox)
    set_consent(a, "granted")
    Profile.objects.filter(pk=b[0].pk).update(email=None)

    _, job = rollback_now(operator, target, 2)

    assert members_of(fresh(target).live_version) == {p.external_id for p in [*a, b[1]]}
    (warning,) = job.warnings
    assert warning["code"] == "members_no_longer_reachable"
    assert "their email address was removed" in warning["message"]
    assert (
        fresh(target).live_version.waterfall[1]["step"]
        == "no longer reachable (address, consent, suppression, restriction)"
    )


def test_rollback_to_a_pruned_version_rebuilds_it_from_its_rules_with_a_warning(actor, sandbox, settings):
    settings.AUDIENCE_VERSIONS_WITH_MEMBERS = 1
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox, rules={"all": [{"attr": "region", "op": "eq", "value": "EU"}]})
    people(sandbox, "eu", 2)
    publish_now(operator, target)
    target.rules = {"all": [{"attr": "region", "op": "eq", "value": "UK"}]}
    target.save(update_fields=["rules"])
    people(sandbox, "uk", 1, region="UK")
    publish_now(operator, fresh(target))
    v1 = AudienceVersion.objects.get(audience=target, number=1)
    assert not v1.members_retained and not Membership.objects.filter(version=v1).exists()
    people(sandbox, "eu-new", 1)  # today's data differs from v1's day

    outcome, job = rollback_now(operator, fresh(target), 1)

    assert [w["code"] for w in outcome.warnings] == ["rebuilt_from_rules"]
    assert "today's data may give other members" in outcome.warnings[0]["message"]
    assert "rebuilt_from_rules" in [w["code"] for w in job.warnings]
    v3 = fresh(target).live_version
    assert v3.rules == v1.rules and v3.rebuilt_from_id == v1.pk
    assert members_of(v3) == {"eu-0", "eu-1", "eu-new-0"}


def test_rollback_refusals(api, actor, sandbox):
    _, target, *_ = _three_versions(actor, sandbox)
    AudienceVersionFactory(audience=target, number=9, failed=True)
    client = api("operator")
    url = f"/api/v1/audiences/{target.pk}/rollback"
    assert client.post(url, {"version": 42}, format="json").json()["code"] == "version_not_found"
    assert client.post(url, {"version": 3}, format="json").json()["code"] == "version_already_live"
    assert client.post(url, {"version": 9}, format="json").json()["code"] == "version_not_ready"
    assert client.post(url, {}, format="json").status_code == 422
    analyst = api("analyst")
    refused(analyst.post(url, {"version": 1}, format="json"), 403, "permission_denied")
    denied_event(analyst.user, "audience.rollback")
    operator2 = api("operator2")
    other_team = operator2.post(url, {"version": 1}, format="json")
    assert "growth" in refused(other_team, 403, "permission_denied")["detail"]
    denied_event(operator2.user, "audience.rollback")


# --- retention ------------------------------------------------------------------------------------


def test_retention_keeps_members_of_the_newest_versions_only(actor, sandbox, settings):
    settings.AUDIENCE_VERSIONS_WITH_MEMBERS = 2
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    people(sandbox, "eu", 3)
    for _ in range(4):
        _, job = publish_now(operator, fresh(target))

    versions = {v.number: v for v in AudienceVersion.objects.filter(audience=target)}
    assert [n for n, v in sorted(versions.items()) if v.members_retained] == [3, 4]
    assert not Membership.objects.filter(version__in=[versions[1], versions[2]]).exists()
    assert Membership.objects.filter(version=versions[4]).count() == 3
    # counts and diff sizes stay for every version
    assert all(v.members == 3 and v.added is not None for v in versions.values())
    assert job.result["pruned_versions"] == [2]


def test_the_live_version_keeps_its_members_even_beyond_the_newest(actor, sandbox, settings):
    settings.AUDIENCE_VERSIONS_WITH_MEMBERS = 1
    operator = actor("operator")
    target = AudienceFactory(environment=sandbox)
    people(sandbox, "eu", 2)
    publish_now(operator, target)
    # a newer version that failed does not count, and never pushes the live one out
    AudienceVersionFactory(audience=target, number=2, failed=True)
    assert runner.prune_memberships(target.pk) == []
    assert Membership.objects.filter(version=fresh(target).live_version).count() == 2
