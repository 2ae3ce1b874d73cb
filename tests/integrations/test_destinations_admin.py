"""Admin pages for destinations and pushes: health and breaker shown, actions (test
connection, reset breaker, switch off, retry now) calling the same services."""

from __future__ import annotations

import pytest

from governance.models import AuditEvent, Door
from integrations.destinations import breakers, runner
from integrations.models import Destination, DestinationPush, PushState
from tests.factories import DestinationFactory, UserFactory

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")

SECRET = "tok-admin-SECRET-55"


@pytest.fixture
def staff(client, db):
    user = UserFactory(username="root", is_staff=True, is_superuser=True, groups=["admin"])
    client.force_login(user)
    return client


@pytest.fixture
def drop(sandbox, tmp_path):
    return DestinationFactory(environment=sandbox, adapter="file", config={"directory": str(tmp_path)}, name="drop")


@pytest.fixture
def hook(sandbox):
    return DestinationFactory(
        environment=sandbox,
        adapter="webhook",
        config={"url": "http://127.0.0.1:9/in"},
        credentials={"token": SECRET},
        name="hook",
    )


def test_the_pages_load_show_the_breaker_and_never_the_credentials(staff, drop, hook):
    for _ in range(5):
        breakers.Breaker.for_destination(hook).record_failure("503")
    runner.members_delivery_start(
        environment=hook.environment, added=[{"external_id": "a"}], removed=[], destinations=[hook], enqueue=False
    )

    listing = staff.get("/admin/integrations/destination/")
    detail = staff.get(f"/admin/integrations/destination/{hook.pk}/change/")
    pushes = staff.get("/admin/integrations/destinationpush/")

    assert listing.status_code == detail.status_code == pushes.status_code == 200
    assert b"degraded" in listing.content and b"open" in listing.content
    assert b"5 consecutive failure(s)" in detail.content
    assert b"stored (encrypted)" in detail.content
    for page in (listing, detail, pushes):
        assert SECRET.encode() not in page.content
    assert b"1 added, 0 removed" in pushes.content


def test_test_connection_action(staff, drop):
    response = staff.post(
        "/admin/integrations/destination/",
        {"action": "test_connection", "_selected_action": [drop.pk]},
        follow=True,
    )
    assert b"test passed" in response.content
    event = AuditEvent.objects.get(action="destination.test")
    assert event.door == Door.ADMIN
    assert Destination.objects.get(pk=drop.pk).last_success_at is not None


def test_reset_breaker_and_switch_off_actions(staff, hook):
    for _ in range(5):
        breakers.Breaker.for_destination(hook).record_failure("503")

    staff.post("/admin/integrations/destination/", {"action": "reset_breaker", "_selected_action": [hook.pk]})
    staff.post("/admin/integrations/destination/", {"action": "switch_off", "_selected_action": [hook.pk]})

    assert breakers.Breaker.for_destination(hook).snapshot().state == "closed"
    assert Destination.objects.get(pk=hook.pk).is_active is False
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {
        "destination.breaker_reset",
        "destination.update",
    }


def test_retry_now_makes_a_deferred_push_due(staff, hook, sandbox):
    from datetime import timedelta

    from django.utils import timezone

    job = runner.members_delivery_start(
        environment=sandbox, added=[{"external_id": "a"}], removed=[], destinations=[hook], enqueue=False
    )
    push = DestinationPush.objects.get(job=job)
    DestinationPush.objects.filter(pk=push.pk).update(
        state=PushState.DEFERRED, next_attempt_at=timezone.now() + timedelta(hours=1)
    )

    staff.post("/admin/integrations/destinationpush/", {"action": "retry_now", "_selected_action": [push.pk]})

    assert DestinationPush.objects.get(pk=push.pk).next_attempt_at <= timezone.now()
    assert AuditEvent.objects.filter(action="destination.push_retry").count() == 1
