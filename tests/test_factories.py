"""The factories make rows the product accepts as its own: valid, in an environment, owned by a
team, in a state the product could be in — and they write no audit or outbox event."""

from __future__ import annotations

import pytest

from audiences.models import AudienceState, Membership, VersionState
from governance.models import ApprovalState, AuditEvent, OutboxEvent
from integrations.destinations.credentials import decrypt_credentials
from integrations.webhooks.signing import decrypt_secret
from tests.factories import (
    WEBHOOK_SECRET,
    ApiTokenFactory,
    ApprovalRequestFactory,
    AudienceFactory,
    AudienceVersionFactory,
    DestinationFactory,
    JobFactory,
    ProfileFactory,
    UserFactory,
    WebhookSubscriptionFactory,
)

pytestmark = pytest.mark.django_db


def test_every_factory_makes_a_valid_row_and_no_audit_or_outbox_event(sandbox, pilot):
    made = [
        ProfileFactory(consent="granted"),
        AudienceFactory(published=True),
        AudienceVersionFactory(),
        DestinationFactory(credentials={"api_key": "k"}),
        WebhookSubscriptionFactory(),
        JobFactory(failed=True),
        ApprovalRequestFactory(target=AudienceFactory(environment=pilot, published=True)),
        ApiTokenFactory(),
    ]
    for row in made:
        row.full_clean()
    assert not AuditEvent.objects.exists() and not OutboxEvent.objects.exists()


def test_an_audience_is_a_draft_of_growth_in_the_sandbox_and_names_stay_unique(sandbox):
    first, second = AudienceFactory(), AudienceFactory()
    assert (first.environment, first.owner_team.name, first.state) == (sandbox, "growth", AudienceState.DRAFT)
    assert (first.name, second.name) == ("EU customers", "EU customers 2")


def test_published_makes_the_rules_live_as_the_next_version_with_its_members(sandbox):
    people = ProfileFactory.create_batch(2, region="EU", consent="granted")
    audience = AudienceFactory(published=people)
    again = AudienceVersionFactory(audience=audience, live=True)

    audience.refresh_from_db()
    assert audience.state == AudienceState.PUBLISHED and audience.live_version == again
    first = audience.versions.get(number=1)
    assert (first.state, first.members, first.rules) == (VersionState.READY, 2, audience.rules)
    assert set(Membership.objects.filter(version=first).values_list("profile", flat=True)) == {p.pk for p in people}
    assert again.number == 2 and not Membership.objects.filter(version=again).exists()


def test_consent_is_one_row_per_channel(sandbox):
    profile = ProfileFactory(consent={"email": "granted", "sms": "denied"})
    assert dict(profile.consents.values_list("channel", "status")) == {"email": "granted", "sms": "denied"}
    assert ProfileFactory(consent="denied", consent__channel="push").consents.get().channel == "push"


def test_secrets_are_stored_encrypted_as_the_services_store_them(sandbox):
    hook = WebhookSubscriptionFactory()
    destination = DestinationFactory(adapter="engagement", credentials={"api_key": "braze-key"})
    assert WEBHOOK_SECRET not in hook.secret_encrypted and decrypt_secret(hook.secret_encrypted) == WEBHOOK_SECRET
    assert decrypt_credentials(destination.credentials_encrypted) == {"api_key": "braze-key"}


def test_a_token_secret_signs_in(client, sandbox):
    token = ApiTokenFactory(user=UserFactory(username="dev", groups=["developer"]))
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token.secret}")
    assert response.status_code == 200 and response.json()["user"]["username"] == "dev"


def test_an_approval_request_can_be_voted_through_and_runs(
    api, pilot, persona, eager_celery, django_capture_on_commit_callbacks
):
    """A factory-made request is one the approval services accept: two votes, then the archive runs."""
    audience = AudienceFactory(environment=pilot, published=True)
    request = ApprovalRequestFactory(target=audience, requester=persona("operator"))
    assert (request.required, request.state, request.target_id) == (2, ApprovalState.PENDING, str(audience.pk))

    for who in ("approver", "developer"):
        with django_capture_on_commit_callbacks(execute=True):
            response = api(who, pilot).post(f"/api/v1/approvals/{request.pk}/approve", {"comment": "ok"}, format="json")
        assert response.status_code == 200, response.content

    request.refresh_from_db()
    audience.refresh_from_db()
    assert request.state == ApprovalState.EXECUTED, request.result
    assert audience.state == AudienceState.ARCHIVED
