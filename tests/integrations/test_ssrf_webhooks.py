"""Server-side request forgery through webhooks (issue 12, "Holes (high)" 3), as an attacker
would try it: a subscription pointed at this network — loopback, private, link-local,
metadata addresses, IPv4-mapped IPv6, a DNS name that resolves there, or one that changes
its answer between the check and the delivery — from production, at creation, update,
delivery and redirect. (Destinations: test_ssrf_destinations.py; the guard itself:
test_egress.py.)

Only the resolver is faked (tests/fakes/network.py): the "attacker's" names resolve to
what the test says, and nothing connects anywhere but this machine. Every test here runs
with a deployment's defaults (`production_rules`: nothing allow-listed) unless it says
otherwise.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from governance.actors import Actor
from governance.models import Door
from integrations.models import DeliveryState, WebhookDelivery, WebhookSubscription
from integrations.outbox import relay
from integrations.webhooks import delivery as webhook_delivery
from integrations.webhooks import services as webhooks
from integrations.webhooks import signing
from tests.factories import WebhookSubscriptionFactory
from tests.fakes.network import INTERNAL_URLS, PUBLIC_TEST_ADDRESS, refusal_of
from tests.reliability import fixtures
from tests.reliability.fixtures import emit
from tests.reliability.receivers import Answer

pytestmark = pytest.mark.usefixtures("production_rules")

no_kicks = fixtures.no_kicks
receiver = fixtures.receiver

WEBHOOKS = "/api/v1/webhooks/"


def hook(client, url):
    return client.post(WEBHOOKS, {"url": url, "event_types": ["consent.updated"]}, format="json")


# --- webhooks: create and update -----------------------------------------------------------


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_a_webhook_to_an_internal_address_is_refused_in_production(api, production, attacker_names, url):
    response = hook(api("developer", production), url)

    body, error = refusal_of(response)
    assert error["pointer"] == "/url" and error["code"] == body["code"] == "url_not_allowed"
    assert error["hint"] and "OUTBOUND_ALLOWED_NETWORKS" in error["hint"]
    assert not WebhookSubscription.objects.filter(environment=production).exists()


def test_the_refusal_names_the_host_and_the_reason(api, production, attacker_names):
    client = api("developer", production)

    mapped = hook(client, "https://[::ffff:169.254.169.254]/")
    named = hook(client, "https://internal.example.test/")

    assert "metadata" in mapped.json()["detail"]
    assert "internal.example.test" in named.json()["detail"] and "10.0.0.7" in named.json()["detail"]
    assert "private" in named.json()["detail"]


def test_a_name_that_does_not_resolve_is_refused_with_a_hint(api, production):
    response = hook(api("developer", production), "https://nowhere.invalid-name-xyz/")

    _, error = refusal_of(response)
    assert error["code"] == "url_not_resolvable" and "DNS" in error["hint"]


def test_changing_a_webhook_to_an_internal_address_is_refused(api, production):
    client = api("developer", production)
    created = hook(client, "https://hooks.example.com/in")
    assert created.status_code == 201, created.json()

    response = client.patch(f"{WEBHOOKS}{created.json()['id']}", {"url": "http://127.0.0.1:6379/"}, format="json")

    _, error = refusal_of(response)
    assert error["pointer"] == "/url" and error["code"] == "url_not_allowed"
    assert WebhookSubscription.objects.get().url == "https://hooks.example.com/in"


def test_plain_http_is_refused_outside_a_sandbox(api, production):
    response = hook(api("developer", production), "http://hooks.example.com/in")

    _, error = refusal_of(response)
    assert error["code"] == "https_required" and "https://hooks.example.com/in" in error["hint"]


def test_an_operator_allow_list_opens_a_private_network_over_https_only(api, production, settings, resolver):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16", "127.0.0.1/32", "169.254.0.0/16"]
    resolver.map("crm.corp.example.test", "10.20.1.2")
    client = api("developer", production)

    def create(url):
        return hook(client, url)

    assert create("https://crm.corp.example.test/in").status_code == 201
    assert create("http://crm.corp.example.test/in").json()["code"] == "https_required"
    # a receiver on this machine, listed by the operator: nothing leaves the machine
    assert create("http://127.0.0.1:8080/in").status_code == 201
    # never, whatever is listed
    assert create("https://169.254.169.254/").json()["code"] == "url_not_allowed"
    assert create("https://10.21.0.1/").json()["code"] == "url_not_allowed"


def test_a_sandbox_webhook_may_reach_this_machine_or_a_public_host_but_not_the_network(api, sandbox):
    client = api("developer", sandbox)

    def create(url):
        return hook(client, url)

    assert create("http://127.0.0.1:8080/in").status_code == 201
    assert create("http://hooks.example.com/in").status_code == 201
    assert create("https://10.0.0.5/").json()["code"] == "url_not_allowed"
    assert create("http://[::ffff:169.254.169.254]/").json()["code"] == "url_not_allowed"


# --- webhooks: delivery ----------------------------------------------------------------------


def _stored_subscription(environment, url):
    """A subscription saved before the rules (or behind the services' back)."""
    return WebhookSubscription.objects.create(
        environment=environment,
        url=url,
        event_types=["consent.updated"],
        secret_encrypted=signing.encrypt_secret(fixtures.SECRET),
    )


def _deliver_one(environment):
    emit(environment)
    relay.relay_outbox()
    outcome = webhook_delivery.deliver_webhooks(now=timezone.now())
    return outcome, WebhookDelivery.objects.get()


def test_a_stored_production_webhook_to_loopback_is_never_sent(production, receiver, no_kicks):
    hook = receiver(Answer(200))
    _stored_subscription(production, hook.url)

    outcome, delivery = _deliver_one(production)

    assert hook.received == [], "nothing reached the internal port"
    assert outcome.failed == 1 and outcome.succeeded == 0
    assert delivery.state == DeliveryState.PENDING and delivery.last_status_code is None
    assert "Not sent" in delivery.last_error and "loopback" in delivery.last_error
    [attempt] = delivery.log.all()
    assert "loopback" in attempt.error


def test_dns_rebinding_between_the_check_and_the_delivery_reaches_nothing(production, receiver, resolver, no_kicks):
    """The name is public when the subscription is made, then points at this machine: the
    delivery is checked at the address it connects to."""
    hook = receiver(Answer(200))
    port = hook.url.split(":")[2].split("/")[0]
    resolver.map("rebind.example.test", PUBLIC_TEST_ADDRESS, "127.0.0.1")
    # Through the service: its check resolves the name once (the public answer); the delivery
    # then gets the rebound one.
    webhooks.webhook_create(
        actor=Actor.system(production, door=Door.CLI),
        url=f"https://rebind.example.test:{port}/hook",
        event_types=["consent.updated"],
        secret=fixtures.SECRET,
    )

    outcome, delivery = _deliver_one(production)

    assert hook.received == []
    assert outcome.failed == 1 and "loopback" in delivery.last_error


def test_the_address_checked_is_the_address_connected(production, receiver, resolver, settings, no_kicks):
    """Resolved once per connection: a resolver that answers differently the second time
    (here: an address nothing listens on) is never asked again between check and connect."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    hook = receiver(Answer(200))
    port = hook.url.split(":")[2].split("/")[0]
    _stored_subscription(production, f"http://pinned.example.test:{port}/hook")
    resolver.map("pinned.example.test", "127.0.0.1", "127.0.0.2")

    outcome, delivery = _deliver_one(production)

    assert outcome.succeeded == 1, delivery.last_error
    assert len(hook.received) == 1
    assert resolver.lookups.count("pinned.example.test") == 1


def test_a_redirect_to_an_internal_address_is_not_followed(production, receiver, settings, no_kicks):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    inside = receiver(Answer(200))
    hook = receiver(Answer(302, headers={"Location": inside.url}))
    WebhookSubscriptionFactory(environment=production, url=hook.url, secret=fixtures.SECRET)

    outcome, delivery = _deliver_one(production)

    assert len(hook.received) == 1 and inside.received == []
    assert outcome.failed == 1 and "redirects are not followed" in delivery.last_error
