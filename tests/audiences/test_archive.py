"""Archiving a published audience in pilot under the approval policy (an approver and a
developer or admin, two people, never the requester), and an archived audience's members
no longer syncing: no publish, no rollback, no push to any destination.

The happy path through the API (approver + admin) is in test_audiences_share_promote.py;
the admin site's action in test_audiences_admin.py.
"""

from __future__ import annotations

import pytest

from audiences.models import Audience, AudienceState
from governance.actors import Actor
from governance.approvals import approval_approve, approval_execute, approval_reject
from governance.models import ApprovalRequest, ApprovalState, AuditEvent, Door, OutboxEvent
from integrations.models import DestinationPush, Job
from marketerapi.problems import ApplicationError
from tests.factories import AudienceFactory, AudienceVersionFactory, DestinationFactory, ProfileFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


def url(audience: Audience, suffix: str = "") -> str:
    return f"/api/v1/audiences/{audience.pk}" + (f"/{suffix}" if suffix else "")


@pytest.fixture
def live(pilot):
    """A published pilot audience with two versions (so a rollback has somewhere to go) and
    an active destination that would receive its diffs."""
    audience = AudienceFactory(environment=pilot, name="Pilot EU")
    first = [ProfileFactory(environment=pilot, region="EU") for _ in range(2)]
    AudienceVersionFactory(audience=audience, live=True, memberships=first)
    AudienceVersionFactory(
        audience=audience, live=True, memberships=[*first, ProfileFactory(environment=pilot, region="EU")]
    )
    DestinationFactory(environment=pilot, name="crm", config={"directory": "/nonexistent", "format": "jsonl"})
    return audience


def vote(persona, pilot, name: str, request: ApprovalRequest, *, reject: str = ""):
    actor = Actor(user=persona(name), environment=pilot, door=Door.API)
    if reject:
        return approval_reject(actor=actor, request=request, comment=reject)
    return approval_approve(actor=actor, request=request)


def file_archive(api, pilot, live, who: str = "operator") -> ApprovalRequest:
    response = api(who, pilot).delete(url(live))
    assert response.status_code == 202, response.content
    body = response.json()["approval"]
    assert body["required"] == 2 and body["state"] == "pending"
    return ApprovalRequest.objects.get(pk=body["id"])


def state_of(audience: Audience) -> str:
    return Audience.objects.values_list("state", flat=True).get(pk=audience.pk)


def test_one_approval_is_not_enough(api, pilot, persona, live):
    request = file_archive(api, pilot, live)

    vote(persona, pilot, "approver", request)

    request.refresh_from_db()
    assert request.state == ApprovalState.PENDING
    assert approval_execute(request.pk) is None
    assert state_of(live) == AudienceState.PUBLISHED
    assert not OutboxEvent.objects.filter(type="audience.archived").exists()


def test_two_approvers_do_not_fill_the_developer_or_admin_step(api, pilot, persona, live):
    request = file_archive(api, pilot, live)
    vote(persona, pilot, "approver", request)

    with pytest.raises(ApplicationError) as refused:
        vote(persona, pilot, "approver2", request)

    assert refused.value.code == "not_eligible"
    assert "a developer or admin" in refused.value.detail
    request.refresh_from_db()
    assert request.state == ApprovalState.PENDING
    assert state_of(live) == AudienceState.PUBLISHED


def test_an_approver_and_a_developer_archive_it(api, pilot, persona, live):
    request = file_archive(api, pilot, live)

    vote(persona, pilot, "developer", request)
    vote(persona, pilot, "approver", request)
    approval_execute(request.pk)

    request.refresh_from_db()
    assert request.state == ApprovalState.EXECUTED, request.result
    assert state_of(live) == AudienceState.ARCHIVED
    done = AuditEvent.objects.get(action="audience.archive", outcome="allowed")
    assert {ref["voter"] for ref in done.approval_refs} == {"p-approver", "p-developer"}


def test_the_requester_never_approves_their_own_archive(api, pilot, persona, live):
    request = file_archive(api, pilot, live, who="admin")

    with pytest.raises(ApplicationError) as refused:
        vote(persona, pilot, "admin", request)

    assert refused.value.code == "self_approval"
    request.refresh_from_db()
    assert request.state == ApprovalState.PENDING
    assert state_of(live) == AudienceState.PUBLISHED


def test_a_rejected_archive_leaves_it_live_and_may_be_asked_again(api, pilot, persona, live):
    request = file_archive(api, pilot, live)

    vote(persona, pilot, "approver", request, reject="Campaign 'Spring' still sends to it.")

    request.refresh_from_db()
    assert request.state == ApprovalState.REJECTED
    assert state_of(live) == AudienceState.PUBLISHED
    assert file_archive(api, pilot, live).pk != request.pk


def test_an_archived_audience_stops_syncing(api, pilot, persona, live):
    request = file_archive(api, pilot, live)
    vote(persona, pilot, "approver", request)
    vote(persona, pilot, "admin", request)
    approval_execute(request.pk)
    assert state_of(live) == AudienceState.ARCHIVED
    jobs_before = Job.objects.count()
    client = api("operator", pilot)

    published = client.post(url(live, "publish"), {}, format="json")
    rolled_back = client.post(url(live, "rollback"), {"version": 1}, format="json")
    edited = client.patch(url(live), {"description": "changed"}, format="json")
    deleted = client.delete(url(live))

    for response in (published, rolled_back, edited, deleted):
        assert (response.status_code, response.json()["code"]) == (409, "audience_archived"), response.content
    # Nothing new reaches a destination: no push, no build; its history stays readable.
    assert not DestinationPush.objects.exists()
    assert Job.objects.count() == jobs_before
    live.refresh_from_db()
    assert live.live_version.number == 2
    assert client.get(url(live, "versions")).status_code == 200
    event = OutboxEvent.objects.get(type="audience.archived")
    assert event.data["live_version"] == live.live_version_id and event.data["approval_request"] == request.pk


# --- the one outcome of delete and archive (governance.approvals.request_or_run) -----------------


def test_delete_returns_the_one_action_outcome(actor, sandbox, pilot):
    from audiences.definitions.services import audience_delete

    draft = audience_delete(actor=actor("operator"), audience=AudienceFactory(environment=sandbox, name="Draft"))
    published = AudienceFactory(environment=sandbox, name="Published")
    AudienceVersionFactory(audience=published, live=True)
    archived = audience_delete(actor=actor("operator"), audience=Audience.objects.get(pk=published.pk))
    in_pilot = AudienceFactory(environment=pilot, name="In pilot")
    AudienceVersionFactory(audience=in_pilot, live=True)
    filed = audience_delete(actor=actor("operator", pilot), audience=Audience.objects.get(pk=in_pilot.pk))

    assert draft.ran and draft.result is None and not Audience.objects.filter(name="Draft").exists()
    assert archived.ran and archived.result is not None and archived.result.state == AudienceState.ARCHIVED
    assert not filed.ran and filed.result is None and filed.approval is not None
    assert filed.approval.action == "audience.archive"
    assert Audience.objects.get(pk=in_pilot.pk).state != AudienceState.ARCHIVED
