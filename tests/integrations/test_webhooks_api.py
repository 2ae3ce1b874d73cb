"""The webhooks API (/webhooks/, /webhooks/{id}/deliveries, /dead-letters/): who may, what is
refused and how, the secret shown once, pausing and resuming, replay and discard — and the
same through the admin."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import include, path
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from governance.models import AuditEvent
from governance.outbox import EVENT_TYPES
from integrations.api import dead_letters as api_dead_letters
from integrations.api import webhooks as api_webhooks
from integrations.models import DeadLetter, DeliveryState, SubscriptionState, WebhookDelivery, WebhookSubscription
from integrations.outbox import relay
from integrations.webhooks import delivery as webhook_delivery
from integrations.webhooks import signing
from tests.conftest import issue_test_token
from tests.factories import WebhookSubscriptionFactory
from tests.refusals import denied_event, refused
from tests.reliability import fixtures
from tests.reliability.fixtures import SECRET, emit
from tests.reliability.receivers import Answer

# Shared fixtures (tests/reliability/fixtures.py), bound here so pytest finds them.
no_kicks = fixtures.no_kicks
receiver = fixtures.receiver

URL = "/api/v1/webhooks/"
BODY = {"url": "https://hooks.example.com/marketerapi", "event_types": ["consent.updated"]}


def create(client, **body):
    return client.post(URL, {**BODY, **body}, format="json")


# --- create ---------------------------------------------------------------------------


def test_create_generates_a_secret_shows_it_once_and_stores_it_encrypted(api):
    client = api("developer")

    response = create(client, description="CRM sync")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_") and "only time" in body["warning"]
    assert body["state"] == "active" and body["environment"] == "sandbox" and body["created_by"] == "p-developer"
    sub = WebhookSubscription.objects.get(pk=body["id"])
    assert body["secret"] not in sub.secret_encrypted
    assert signing.decrypt_secret(sub.secret_encrypted) == body["secret"]
    # never shown again
    assert "secret" not in client.get(f"{URL}{sub.pk}").json()
    assert all("secret" not in item for item in client.get(URL).json()["results"])
    event = AuditEvent.objects.get(action="webhook.create")
    assert event.changes["after"]["secret"] == "generated" and body["secret"] not in str(event.changes)


def test_create_with_a_secret_of_ones_own(api):
    response = create(api("admin"), secret=SECRET)
    assert response.status_code == 201 and response.json()["secret"] == SECRET
    assert signing.decrypt_secret(WebhookSubscription.objects.get().secret_encrypted) == SECRET


def test_unknown_event_types_are_refused_listing_the_allowed_ones(api):
    response = create(api("developer"), event_types=["consent.updated", "audience.deleted"])

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "unknown_event_type"
    assert problem["allowed_event_types"] == sorted(EVENT_TYPES)
    assert problem["errors"][0]["pointer"] == "/event_types/1"
    assert "audience.published" in problem["hint"] and problem["request_id"] is not None
    assert not WebhookSubscription.objects.exists()


def test_no_event_types_is_refused(api):
    response = create(api("developer"), event_types=[])
    assert response.status_code == 422 and response.json()["code"] == "no_event_types"


def test_unknown_fields_are_a_400_listing_them(api):
    response = create(api("developer"), evnt_types=["consent.updated"])

    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "unknown_fields" and problem["errors"][0]["pointer"] == "/evnt_types"
    assert problem["allowed_fields"] == ["url", "event_types", "secret", "description"]


def test_values_of_the_wrong_type_are_a_400(api):
    response = api("developer").post(
        URL, {"url": "https://x.example.com", "event_types": "consent.updated"}, format="json"
    )
    assert response.status_code == 400 and response.json()["errors"][0]["pointer"] == "/event_types"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("hooks.example.com/x", "invalid_url"),
        ("ftp://hooks.example.com/x", "invalid_url"),
        ("https://user:pw@hooks.example.com/x", "url_has_credentials"),
        ("http://169.254.169.254/latest/meta-data", "url_not_allowed"),
        ("https://" + "a" * 500 + ".example.com", "invalid_url"),
    ],
)
def test_bad_urls_are_a_422_with_a_hint(api, url, code):
    response = create(api("developer"), url=url)

    assert response.status_code == 422, response.json()
    problem = response.json()
    assert problem["code"] == code and problem["hint"] and problem["errors"][0]["pointer"] == "/url"


def test_plain_http_is_refused_outside_a_sandbox_except_to_an_allow_listed_loopback(api, production, settings):
    """A receiver on the same machine is reached from production only when the operator
    lists it (OUTBOUND_ALLOWED_NETWORKS); then plain http is fine, nothing leaves the machine.
    tests/integrations/test_ssrf.py has the rest of the outbound rules."""
    client = api("developer", production)
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    unlisted = create(client, url="http://127.0.0.1:8080/hook")
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]

    refused = create(client, url="http://hooks.example.com/x")
    loopback = create(client, url="http://127.0.0.1:8080/hook")
    secure = create(client, url="https://hooks.example.com/x")
    in_sandbox = create(api("admin"), url="http://hooks.example.com/x")

    assert unlisted.status_code == 422 and unlisted.json()["code"] == "url_not_allowed"
    assert refused.status_code == 422 and refused.json()["code"] == "https_required"
    assert "https://" in refused.json()["hint"]
    assert loopback.status_code == secure.status_code == in_sandbox.status_code == 201


def test_a_weak_secret_is_refused(api):
    response = create(api("developer"), secret="short")
    assert response.status_code == 422 and response.json()["code"] == "weak_secret"


# --- who may ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["analyst", "operator", "approver", "compliance"])
def test_roles_without_webhook_rights_get_403(api, who):
    client = api(who)
    listed = client.get(URL)
    created = create(client)

    assert listed.status_code == created.status_code == 403
    assert "developer" in created.json()["detail"] and created.json()["code"] == "permission_denied"
    assert AuditEvent.objects.filter(action="webhook.create", outcome="denied").count() == 1


def test_a_token_without_the_admin_scope_gets_403(persona, sandbox):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_test_token(persona('developer'), sandbox, ['read'])}")
    response = client.get(URL)
    assert "admin" in refused(response, 403, "permission_denied")["detail"]


def test_another_environments_subscription_is_404(api, pilot):
    other = WebhookSubscriptionFactory(environment=pilot, url="https://pilot.example.com/hook")
    client = api("developer")

    for response in (
        client.get(f"{URL}{other.pk}"),
        client.patch(f"{URL}{other.pk}", {"description": "x"}, format="json"),
        client.delete(f"{URL}{other.pk}"),
        client.get(f"{URL}{other.pk}/deliveries"),
    ):
        assert response.status_code == 404 and response.json()["code"] == "webhook_not_found"
    assert client.get(URL).json()["results"] == []
    assert WebhookSubscription.objects.filter(pk=other.pk).exists()


# --- change, pause, resume, delete -----------------------------------------------------


def test_patch_changes_fields_and_audits_before_and_after(api, sandbox):
    sub = WebhookSubscriptionFactory(environment=sandbox, url="https://hooks.example.com/a")
    client = api("developer")

    response = client.patch(
        f"{URL}{sub.pk}/", {"event_types": ["audience.published"], "description": "new"}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["event_types"] == ["audience.published"] and "secret" not in response.json()
    event = AuditEvent.objects.filter(action="webhook.update").latest("id")
    assert event.changes["before"] == {"event_types": ["consent.updated"], "description": ""}
    assert event.changes["after"] == {"event_types": ["audience.published"], "description": "new"}


def test_patch_pause_and_resume(api, sandbox, no_kicks, django_capture_on_commit_callbacks):
    sub = WebhookSubscriptionFactory(environment=sandbox, url="https://hooks.example.com/a")
    client = api("developer")

    paused = client.patch(f"{URL}{sub.pk}", {"state": "paused"}, format="json").json()
    assert paused["state"] == "paused" and paused["paused_reason"].startswith("Paused by p-developer")

    WebhookSubscription.objects.filter(pk=sub.pk).update(failing_since=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        resumed = client.patch(f"{URL}{sub.pk}", {"state": "active"}, format="json").json()
    assert resumed["state"] == "active" and resumed["paused_reason"] == "" and resumed["failing_since"] is None
    assert no_kicks == ["deliveries"]

    bad = client.patch(f"{URL}{sub.pk}", {"state": "sleeping"}, format="json")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_state"
    assert bad.json()["errors"][0]["pointer"] == "/state" and "active, paused" in bad.json()["hint"]


def test_rotate_secret_shows_the_new_one_once(api, sandbox):
    sub = WebhookSubscriptionFactory(environment=sandbox, url="https://hooks.example.com/a")
    client = api("developer")

    response = client.patch(f"{URL}{sub.pk}", {"rotate_secret": True}, format="json")

    secret = response.json()["secret"]
    assert secret.startswith("whsec_") and secret != SECRET
    sub.refresh_from_db()
    assert signing.decrypt_secret(sub.secret_encrypted) == secret
    assert AuditEvent.objects.filter(action="webhook.update").latest("id").changes["secret"] == "rotated"
    both = client.patch(f"{URL}{sub.pk}", {"rotate_secret": True, "secret": SECRET}, format="json")
    assert both.status_code == 422 and both.json()["code"] == "conflicting_fields"
    unknown = client.patch(f"{URL}{sub.pk}", {"colour": "red"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_fields"
    http_in_prod_check = client.patch(f"{URL}{sub.pk}", {"url": "not a url"}, format="json")
    assert http_in_prod_check.status_code == 422 and http_in_prod_check.json()["code"] == "invalid_url"


def test_a_patch_that_changes_nothing_writes_nothing(api, sandbox):
    sub = WebhookSubscriptionFactory(environment=sandbox, url="https://hooks.example.com/a")
    before = AuditEvent.objects.count()
    response = api("developer").patch(f"{URL}{sub.pk}", {"url": "https://hooks.example.com/a"}, format="json")
    assert response.status_code == 200 and AuditEvent.objects.count() == before


def test_delete_removes_the_subscription_and_its_deliveries(api, sandbox, no_kicks):
    sub = WebhookSubscriptionFactory(environment=sandbox, url="https://hooks.example.com/a")
    emit(sandbox)
    relay.relay_outbox()
    assert WebhookDelivery.objects.count() == 1

    response = api("admin").delete(f"{URL}{sub.pk}")

    assert response.status_code == 204
    assert not WebhookSubscription.objects.exists() and not WebhookDelivery.objects.exists()
    event = AuditEvent.objects.get(action="webhook.delete")
    assert event.target_id == str(sub.pk) and event.changes["before"]["url"] == "https://hooks.example.com/a"


# --- deliveries ------------------------------------------------------------------------


def test_deliveries_are_listed_with_their_log_in_a_fixed_number_of_queries(
    api, sandbox, receiver, no_kicks, django_assert_num_queries
):
    hook = receiver(Answer(500, body=b"nope"), default=Answer(200))
    sub = WebhookSubscriptionFactory(environment=sandbox, url=hook.url)
    client = api("developer")
    emit(sandbox, aggregate=("audiences.profile", 1))
    relay.relay_outbox()
    webhook_delivery.deliver_webhooks()
    client.get(URL)  # the token's first use records last_used_at

    with CaptureQueriesContext(connection) as one:
        first = client.get(f"{URL}{sub.pk}/deliveries")
    for i in range(2, 6):
        emit(sandbox, aggregate=("audiences.profile", i))
    relay.relay_outbox()
    webhook_delivery.deliver_webhooks()
    with django_assert_num_queries(len(one.captured_queries)):
        many = client.get(f"{URL}{sub.pk}/deliveries")

    assert first.status_code == 200
    [only] = first.json()["results"]
    assert only["state"] == "pending" and only["attempts"] == 1 and only["next_attempt_at"]
    assert only["log"][0]["status_code"] == 500 and only["log"][0]["error"] == "HTTP 500: nope"
    assert only["event_id"].startswith("evt_") and only["event_type"] == "consent.updated"
    assert len(many.json()["results"]) == 5
    pending = client.get(f"{URL}{sub.pk}/deliveries", {"state": "pending"}).json()["results"]
    assert [d["id"] for d in pending] == [only["id"]]
    page = client.get(f"{URL}{sub.pk}/deliveries", {"limit": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    assert client.get(f"{URL}{sub.pk}/deliveries", {"stat": "x"}).json()["code"] == "unknown_query_parameter"


# --- dead letters ----------------------------------------------------------------------


def _dead_letter(sandbox, url="https://hooks.example.com/a"):
    sub = WebhookSubscriptionFactory(environment=sandbox, url=url)
    emit(sandbox)
    relay.relay_outbox()
    now = timezone.now()
    WebhookDelivery.objects.update(
        attempts=webhook_delivery.MAX_ATTEMPTS, last_error="HTTP 500: nope", next_attempt_at=now
    )
    webhook_delivery.deliver_webhooks(now=now)
    return sub, DeadLetter.objects.get()


def test_dead_letters_are_listed_and_filtered(api, sandbox, pilot, no_kicks):
    _, letter = _dead_letter(sandbox)
    DeadLetter.objects.create(environment=pilot, kind="webhook_delivery", reference_id="1")
    client = api("developer")

    listed = client.get("/api/v1/dead-letters/").json()["results"]
    open_ = client.get("/api/v1/dead-letters/", {"state": "open"}).json()["results"]
    replayed = client.get("/api/v1/dead-letters/", {"state": "replayed"}).json()["results"]

    assert [d["id"] for d in listed] == [letter.pk] == [d["id"] for d in open_]
    assert replayed == []
    assert listed[0]["state"] == "open" and listed[0]["last_error"] == "HTTP 500: nope"
    assert listed[0]["payload"]["event_id"].startswith("evt_")
    refused(api("analyst").get("/api/v1/dead-letters/"), 403, "permission_denied")


def test_replay_requeues_a_fresh_delivery_and_it_is_sent(api, sandbox, receiver, no_kicks):
    hook = receiver(default=Answer(200))
    _, letter = _dead_letter(sandbox, hook.url)
    client = api("developer")

    response = client.post(f"/api/v1/dead-letters/{letter.pk}/replay")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "replayed" and body["resolved_by"] == "p-developer" and "re-queued" in body["detail"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 0
    assert webhook_delivery.deliver_webhooks().succeeded == 1
    assert len(hook.received) == 1 and hook.received[0].event_id == letter.payload["event_id"]
    assert AuditEvent.objects.filter(action="dead_letter.replay", target_id=str(letter.pk)).count() == 1

    again = client.post(f"/api/v1/dead-letters/{letter.pk}/replay")
    assert again.status_code == 409 and again.json()["code"] == "dead_letter_resolved"


def test_discard(api, sandbox, no_kicks):
    _, letter = _dead_letter(sandbox)

    response = api("admin").post(f"/api/v1/dead-letters/{letter.pk}/discard/")

    assert response.status_code == 200 and response.json()["state"] == "discarded"
    assert WebhookDelivery.objects.get().state == DeliveryState.DISCARDED
    assert AuditEvent.objects.filter(action="dead_letter.discard").count() == 1


def test_replay_of_a_deleted_subscriptions_delivery_is_a_409(api, sandbox, no_kicks):
    sub, letter = _dead_letter(sandbox)
    client = api("developer")
    client.delete(f"{URL}{sub.pk}")

    response = client.post(f"/api/v1/dead-letters/{letter.pk}/replay")

    assert response.status_code == 409 and response.json()["code"] == "subscription_deleted"
    assert client.post(f"/api/v1/dead-letters/{letter.pk}/discard").status_code == 200


def test_replay_of_a_paused_subscriptions_delivery_waits_for_resume(api, sandbox, no_kicks):
    sub, letter = _dead_letter(sandbox)
    WebhookSubscription.objects.filter(pk=sub.pk).update(state=SubscriptionState.PAUSED)

    response = api("developer").post(f"/api/v1/dead-letters/{letter.pk}/replay")

    assert response.status_code == 200 and "paused" in response.json()["detail"]


def test_dead_letters_permissions(api, sandbox, pilot, no_kicks):
    _, letter = _dead_letter(sandbox)
    analyst = api("analyst")
    refused(analyst.post(f"/api/v1/dead-letters/{letter.pk}/replay"), 403, "permission_denied")
    denied_event(analyst.user, "dead_letter.replay")
    other = api("developer", pilot).post(f"/api/v1/dead-letters/{letter.pk}/discard")
    assert other.status_code == 404 and other.json()["code"] == "dead_letter_not_found"
    letter.refresh_from_db()
    assert letter.resolved_at is None


# --- admin -----------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, persona):
    user = persona("admin")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    return client


def test_admin_replay_and_discard_actions_call_the_services(admin_client, sandbox, no_kicks):
    _, letter = _dead_letter(sandbox)
    changelist = "/admin/integrations/deadletter/"

    assert admin_client.get(changelist).status_code == 200
    assert admin_client.get(f"{changelist}{letter.pk}/change/").status_code == 200
    response = admin_client.post(changelist, {"action": "replay", "_selected_action": [letter.pk]}, follow=True)

    assert response.status_code == 200
    letter.refresh_from_db()
    assert letter.resolution == "replayed" and letter.resolved_by.username == "p-admin"
    event = AuditEvent.objects.get(action="dead_letter.replay")
    assert event.door == "admin"

    # a second replay is refused with the reason shown, not a crash
    response = admin_client.post(changelist, {"action": "replay", "_selected_action": [letter.pk]}, follow=True)
    assert "already replayed or discarded" in response.content.decode() or "was replayed" in response.content.decode()


def test_admin_discard_action(admin_client, sandbox, no_kicks):
    _, letter = _dead_letter(sandbox)
    admin_client.post("/admin/integrations/deadletter/", {"action": "discard", "_selected_action": [letter.pk]})
    letter.refresh_from_db()
    assert letter.resolution == "discarded"


def test_admin_pause_and_resume_subscriptions_and_see_deliveries(admin_client, sandbox, no_kicks):
    sub = WebhookSubscriptionFactory(environment=sandbox, url="https://hooks.example.com/a")
    emit(sandbox)
    relay.relay_outbox()
    changelist = "/admin/integrations/webhooksubscription/"

    admin_client.post(changelist, {"action": "pause", "_selected_action": [sub.pk]})
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.PAUSED
    admin_client.post(changelist, {"action": "resume", "_selected_action": [sub.pk]})
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE

    page = admin_client.get(f"{changelist}{sub.pk}/change/").content.decode()
    assert "secret" not in page.lower().replace("secret manager", "")
    delivery = WebhookDelivery.objects.get()
    assert admin_client.get(f"/admin/integrations/webhookdelivery/{delivery.pk}/change/").status_code == 200


# --- schema ----------------------------------------------------------------------------

OPERATIONS = {
    "webhooks_list",
    "webhooks_create",
    "webhooks_retrieve",
    "webhooks_update",
    "webhooks_destroy",
    "webhooks_deliveries_list",
    "dead_letters_list",
    "dead_letters_replay",
    "dead_letters_discard",
}


def test_every_webhook_endpoint_is_documented_without_schema_warnings(db):
    GENERATOR_STATS.reset()
    patterns = [path("api/v1/", include([*api_webhooks.urlpatterns, *api_dead_letters.urlpatterns]))]

    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)

    assert not GENERATOR_STATS._warn_cache, list(GENERATOR_STATS._warn_cache)
    assert not GENERATOR_STATS._error_cache, list(GENERATOR_STATS._error_cache)
    operations = {op["operationId"]: op for item in schema["paths"].values() for op in item.values()}
    assert set(operations) == OPERATIONS
    for name in OPERATIONS:
        op = operations[name]
        assert op["summary"] and "**Permission:**" in op["description"], name
        assert {"401", "403"} <= set(op["responses"]), name
        assert any(
            "examples" in content for r in op["responses"].values() for content in r.get("content", {}).values()
        ) or (name == "webhooks_destroy"), name
    assert {"400", "422"} <= set(operations["webhooks_create"]["responses"])
    assert "409" in operations["dead_letters_replay"]["responses"]
