"""The integrations pages' admin actions call the services the API uses
(integrations/destinations/, integrations/webhooks/): each writes its audit event through
the admin door in the object's own environment, whichever environment the person acts in.
None of these services emits a domain event, and neither does the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.models import AuditEvent, Door, OutboxEvent
from integrations.destinations import breakers
from integrations.models import (
    DeadLetter,
    DeliveryState,
    Destination,
    DestinationPush,
    PushState,
    SubscriptionState,
    WebhookDelivery,
    WebhookSubscription,
)
from tests.factories import DestinationFactory, UserFactory, WebhookSubscriptionFactory

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")


@pytest.fixture
def developer(db):
    """Developers run the integrations pages (docs/admin.md §1); not a superuser."""
    return UserFactory(username="dev", is_staff=True, groups=["developer"])


@pytest.fixture
def site(client, developer):
    client.force_login(developer)
    return client


def _act(site, url: str, action: str, objects):
    response = site.post(url, {"action": action, "_selected_action": [o.pk for o in objects]}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def _only_event(action: str) -> AuditEvent:
    (event,) = AuditEvent.objects.filter(action=action)
    return event


def _assert_by_admin(event: AuditEvent, user, environment, target) -> None:
    assert (event.door, event.actor_user, event.environment, event.outcome) == (
        Door.ADMIN,
        user,
        environment,
        "allowed",
    )
    assert (event.target_type, event.target_id) == (target._meta.label_lower, str(target.pk))


def test_test_connection(site, developer, sandbox, tmp_path):
    drop = DestinationFactory(environment=sandbox, adapter="file", config={"directory": str(tmp_path)}, name="drop")

    page = _act(site, "/admin/integrations/destination/", "test_connection", [drop])

    assert "Drop: test passed" in page
    _assert_by_admin(_only_event("destination.test"), developer, sandbox, drop)
    assert not OutboxEvent.objects.exists()


def test_reset_breaker(site, developer, pilot):
    hook = DestinationFactory(
        environment=pilot, adapter="webhook", config={"url": "http://127.0.0.1:9/in"}, name="hook"
    )
    for _ in range(breakers.failure_threshold()):
        breakers.Breaker.for_destination(hook).record_failure("503")

    page = _act(site, "/admin/integrations/destination/", "reset_breaker", [hook])

    assert "Hook: breaker closed" in page
    assert breakers.Breaker.for_destination(hook).snapshot().state == "closed"
    event = _only_event("destination.breaker_reset")
    _assert_by_admin(event, developer, pilot, hook)
    assert event.changes["before"]["breaker"] == "open"
    assert not OutboxEvent.objects.exists()


def test_switch_off_and_on(site, developer, pilot):
    hook = DestinationFactory(
        environment=pilot, adapter="webhook", config={"url": "http://127.0.0.1:9/in"}, name="hook"
    )

    _act(site, "/admin/integrations/destination/", "switch_off", [hook])
    off = Destination.objects.get(pk=hook.pk).is_active
    _act(site, "/admin/integrations/destination/", "switch_on", [hook])

    assert (off, Destination.objects.get(pk=hook.pk).is_active) == (False, True)
    events = list(AuditEvent.objects.filter(action="destination.update").order_by("id"))
    assert len(events) == 2
    for event in events:
        _assert_by_admin(event, developer, pilot, hook)
    assert not OutboxEvent.objects.exists()


def test_retry_now(site, developer, pilot):
    hook = DestinationFactory(
        environment=pilot, adapter="webhook", config={"url": "http://127.0.0.1:9/in"}, name="hook"
    )
    push = DestinationPush.objects.create(
        destination=hook,
        kind="members",
        payload={"added": [], "removed": []},
        state=PushState.DEFERRED,
        next_attempt_at=timezone.now() + timedelta(hours=1),
    )

    page = _act(site, "/admin/integrations/destinationpush/", "retry_now", [push])

    assert f"Push {push.pk}: due now" in page
    assert DestinationPush.objects.get(pk=push.pk).next_attempt_at <= timezone.now()
    event = _only_event("destination.push_retry")
    _assert_by_admin(event, developer, pilot, hook)
    assert event.changes["push_id"] == push.pk


def test_pause_and_resume(site, developer, pilot):
    sub = WebhookSubscriptionFactory(environment=pilot, url="http://127.0.0.1:9/hook")

    paused = _act(site, "/admin/integrations/webhooksubscription/", "pause", [sub])
    state_after_pause = WebhookSubscription.objects.get(pk=sub.pk).state
    resumed = _act(site, "/admin/integrations/webhooksubscription/", "resume", [sub])

    assert "Paused 1 subscription(s)" in paused and "Resumed 1 subscription(s)" in resumed
    assert (state_after_pause, WebhookSubscription.objects.get(pk=sub.pk).state) == (
        SubscriptionState.PAUSED,
        SubscriptionState.ACTIVE,
    )
    pause, resume = AuditEvent.objects.filter(action="webhook.update").order_by("id")
    for event in (pause, resume):
        _assert_by_admin(event, developer, pilot, sub)
    assert (pause.changes["after"]["state"], resume.changes["after"]["state"]) == ("paused", "active")
    assert not OutboxEvent.objects.exists()


def _dead_delivery(environment) -> DeadLetter:
    sub = WebhookSubscriptionFactory(environment=environment, url="http://127.0.0.1:9/hook")
    event = OutboxEvent.objects.create(
        environment=environment, type="consent.updated", aggregate_type="x", aggregate_id="1"
    )
    delivery = WebhookDelivery.objects.create(
        subscription=sub, event=event, state=DeliveryState.DEAD, attempts=8, last_error="HTTP 503"
    )
    return DeadLetter.objects.create(
        environment=environment,
        kind="webhook_delivery",
        reference_id=str(delivery.pk),
        payload={"delivery_id": delivery.pk, "event_id": event.public_id},
        attempts=8,
        last_error="HTTP 503",
    )


def test_replay(site, developer, pilot):
    letter = _dead_delivery(pilot)
    events_before = OutboxEvent.objects.count()

    page = _act(site, "/admin/integrations/deadletter/", "replay", [letter])

    assert "Replayed 1 dead letter(s)." in page
    letter.refresh_from_db()
    assert (letter.resolution, letter.resolved_by) == ("replayed", developer)
    delivery = WebhookDelivery.objects.get(pk=letter.reference_id)
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 0)
    event = _only_event("dead_letter.replay")
    _assert_by_admin(event, developer, pilot, letter)
    assert OutboxEvent.objects.count() == events_before


def test_discard(site, developer, pilot):
    letter = _dead_delivery(pilot)

    page = _act(site, "/admin/integrations/deadletter/", "discard", [letter])

    assert "Discarded 1 dead letter(s)." in page
    letter.refresh_from_db()
    assert letter.resolution == "discarded"
    assert WebhookDelivery.objects.get(pk=letter.reference_id).state == DeliveryState.DISCARDED
    _assert_by_admin(_only_event("dead_letter.discard"), developer, pilot, letter)


def test_replaying_a_resolved_dead_letter_is_refused_on_the_page(site, developer, pilot):
    letter = _dead_delivery(pilot)
    _act(site, "/admin/integrations/deadletter/", "discard", [letter])

    page = _act(site, "/admin/integrations/deadletter/", "replay", [letter])

    assert "was discarded on" in page
    assert not AuditEvent.objects.filter(action="dead_letter.replay").exists()
