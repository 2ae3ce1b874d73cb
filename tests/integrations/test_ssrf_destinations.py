"""Server-side request forgery through destinations (issue 12, "Holes (high)" 3): a
destination pointed at this network from production — at creation, update, the connection
test (which must not tell open ports from closed ones) and every adapter call (webhook,
crm token and REST, engagement) — and file destinations outside a sandbox kept under the
configured roots. (Webhooks: test_ssrf_webhooks.py; the guard itself: test_egress.py.)

Only the resolver is faked (tests/fakes/network.py); nothing connects anywhere but this
machine. Every test here runs with a deployment's defaults (`production_rules`) unless it
says otherwise.
"""

from __future__ import annotations

import os

import pytest

from integrations.destinations import pushing
from integrations.destinations.credentials import encrypt_credentials
from integrations.models import DeadLetter, Destination, DestinationPush, PushState
from tests.factories import DestinationFactory
from tests.fakes.helpers import BRAZE_CREDENTIALS, SFMC_CREDENTIALS, braze_config
from tests.fakes.network import PUBLIC_TEST_ADDRESS, refusal_of
from tests.reliability.receivers import closed_port_url

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state", "production_rules")

DESTINATIONS = "/api/v1/destinations/"


# --- destinations: create, update ------------------------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "config", "pointer"),
    [
        ("webhook", {"url": "http://127.0.0.1:5432/"}, "/config/url"),
        ("webhook", {"url": "http://localhost:6379/"}, "/config/url"),
        ("webhook", {"url": "https://[::ffff:169.254.169.254]/"}, "/config/url"),
        ("engagement", {"base_url": "https://internal.example.test", "subscription_group_id": "g"}, "/config/base_url"),
        ("engagement", {"base_url": "https://10.1.2.3", "subscription_group_id": "sg"}, "/config/base_url"),
        ("crm", {"auth_url": "https://169.254.169.254", "data_extension_key": "DE"}, "/config/auth_url"),
        (
            "crm",
            {"subdomain": "tenant-abc", "rest_url": "https://[fd00:ec2::254]", "data_extension_key": "DE"},
            "/config/rest_url",
        ),
    ],
)
def test_a_destination_at_an_internal_address_is_refused_in_production(
    api, production, attacker_names, adapter, config, pointer
):
    credentials = {"webhook": {}, "engagement": BRAZE_CREDENTIALS, "crm": SFMC_CREDENTIALS}[adapter]
    body = {"name": "d", "adapter": adapter, "config": config, "credentials": credentials or None}

    response = api("developer", production).post(DESTINATIONS, body, format="json")

    payload, error = refusal_of(response)
    assert payload["code"] == "invalid_destination"
    assert (error["pointer"], error["code"]) == (pointer, "url_not_allowed")
    assert "OUTBOUND_ALLOWED_NETWORKS" in error["hint"]
    assert not Destination.objects.filter(environment=production).exists()


def test_changing_a_destination_to_an_internal_address_is_refused(api, production):
    client = api("developer", production)
    created = client.post(
        DESTINATIONS, {"name": "hook", "adapter": "webhook", "config": {"url": "https://hooks.example.com/in"}}, "json"
    )
    assert created.status_code == 201, created.json()

    response = client.patch(
        f"{DESTINATIONS}{created.json()['id']}", {"config": {"url": "http://127.0.0.1:6379/"}}, format="json"
    )

    _, error = refusal_of(response)
    assert (error["pointer"], error["code"]) == ("/config/url", "url_not_allowed")
    assert Destination.objects.get().config["url"] == "https://hooks.example.com/in"


# --- destinations: the connection test cannot scan ports --------------------------------


def _volatile_free(body):
    return {k: v for k, v in body.items() if k not in ("tested_at", "latency_ms", "health")}


def test_the_connection_test_gives_the_same_answer_for_an_open_and_a_closed_internal_port(api, production, server):
    open_row = DestinationFactory(
        environment=production, adapter="webhook", config={"url": server.url + "/in"}, name="scan"
    )
    closed_row = DestinationFactory(
        environment=production, adapter="webhook", config={"url": closed_port_url()}, name="scan-2"
    )
    client = api("developer", production)

    opened = client.post(f"{DESTINATIONS}{open_row.pk}/test")
    closed = client.post(f"{DESTINATIONS}{closed_row.pk}/test")

    assert opened.status_code == closed.status_code == 200
    assert server.requests == [], "the open port was never connected to"
    first, second = _volatile_free(opened.json()), _volatile_free(closed.json())
    assert first["ok"] is second["ok"] is False
    assert first["message"].replace("scan:", "X:") == second["message"].replace("scan-2:", "X:")
    assert "loopback" in first["message"] and "loopback" in second["message"]
    assert first["checks"] == second["checks"] and first["hint"] == second["hint"]
    assert opened.json()["latency_ms"] == closed.json()["latency_ms"] == 0


# --- destinations: every call -----------------------------------------------------------


def _push(destination, added=("u1",)):
    push = DestinationPush.objects.create(
        destination=destination, kind="members", payload={"added": [{"external_id": a} for a in added]}
    )
    pushing.push_run(push.pk)
    push.refresh_from_db()
    return push


def test_a_stored_production_destination_at_loopback_is_never_called(production, server, sleeps):
    hook = DestinationFactory(
        environment=production, adapter="webhook", config={"url": server.url + "/in"}, name="hook"
    )

    push = _push(hook)

    assert server.requests == []
    assert push.state == PushState.FAILED and "loopback" in push.last_error
    letter = DeadLetter.objects.get(reference_id=str(push.pk))
    assert "loopback" in letter.last_error


def test_a_vendor_name_rebound_to_this_machine_gets_no_call(production, braze, resolver, sleeps):
    """Public when the destination is saved and when the push checks it, this machine when
    the adapter connects: the connection itself is refused."""
    port = braze.url.rsplit(":", 1)[1]
    resolver.map("rest.braze.example.test", PUBLIC_TEST_ADDRESS, PUBLIC_TEST_ADDRESS, "127.0.0.1")
    destination = Destination.objects.create(
        environment=production,
        name="Braze",
        adapter="engagement",
        config=braze_config(braze, base_url=f"https://rest.braze.example.test:{port}"),
        credentials_encrypted=encrypt_credentials(BRAZE_CREDENTIALS),
    )
    from integrations.destinations.validation import target_guard

    target_guard(destination)  # as saving checks it

    push = _push(destination)

    assert braze.requests == []
    assert resolver.lookups.count("rest.braze.example.test") == 3
    assert push.state == PushState.FAILED and "loopback" in push.last_error and "nothing was sent" in push.last_error


def test_a_crm_token_naming_an_internal_rest_host_gets_no_rest_call(production, sfmc, settings, sleeps):
    """The token endpoint is allowed (listed by the operator); the REST host its answer names
    is not: the REST call is refused, the credentials never go there."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    port = sfmc.url.rsplit(":", 1)[1]
    sfmc.rest_instance_url = f"http://127.0.0.2:{port}/"
    config = {"auth_url": sfmc.url, "data_extension_key": "DE-AUD", "poll_interval": 0.0}
    destination = DestinationFactory(environment=production, adapter="crm", config=config, credentials=SFMC_CREDENTIALS)

    push = _push(destination)

    assert [r.path for r in sfmc.requests] == ["/v2/token"]
    assert push.state == PushState.FAILED and "127.0.0.2" in push.last_error and "loopback" in push.last_error


# --- file destinations outside a sandbox ----------------------------------------------------


def _file(api, environment, directory):
    body = {"name": f"drop-{abs(hash(str(directory)))}", "adapter": "file", "config": {"directory": str(directory)}}
    return api("developer", environment).post(DESTINATIONS, body, format="json")


def test_file_destinations_outside_a_sandbox_need_a_configured_root(api, production, tmp_path):
    _, error = refusal_of(_file(api, production, tmp_path))

    assert (error["pointer"], error["code"]) == ("/config/directory", "directory_not_allowed")
    assert "DESTINATION_FILE_ROOTS" in error["hint"]


def test_file_destinations_stay_under_the_roots_with_links_and_dots_resolved(api, production, tmp_path, settings):
    root, outside = tmp_path / "drops", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "crm").mkdir()
    os.symlink(outside, root / "escape")
    settings.DESTINATION_FILE_ROOTS = [str(root)]

    assert _file(api, production, root / "crm").status_code == 201
    for sneaky in (root / ".." / "elsewhere", root / "escape", root / "escape" / "deeper", "/etc"):
        _, error = refusal_of(_file(api, production, sneaky))
        assert error["code"] == "directory_not_allowed", sneaky


def test_a_drop_directory_swapped_for_a_link_after_saving_gets_nothing(production, tmp_path, settings, sleeps):
    root, outside = tmp_path / "drops", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    settings.DESTINATION_FILE_ROOTS = [str(root)]
    (root / "crm").mkdir()
    drop = DestinationFactory(
        environment=production, adapter="file", config={"directory": str(root / "crm")}, name="drop"
    )
    os.rmdir(root / "crm")
    os.symlink(outside, root / "crm")

    push = _push(drop)

    assert os.listdir(outside) == []
    assert push.state == PushState.FAILED and "drop directories" in push.last_error
