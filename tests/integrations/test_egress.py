"""The outbound-URL guard itself (integrations/egress.py): how addresses are judged, what
the allow-list opens and what it never opens, and that the clients it makes check the
address they connect to — before connecting, with one resolution."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from integrations import egress
from tests.fakes.network import PUBLIC_TEST_ADDRESS

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("production_rules")

TIMEOUT = httpx.Timeout(2.0)


@pytest.mark.parametrize(
    ("address", "kind", "decisive"),
    [
        ("93.184.215.14", "public", "93.184.215.14"),
        ("2606:4700::1111", "public", "2606:4700::1111"),
        ("127.0.0.1", "loopback", "127.0.0.1"),
        ("127.9.9.9", "loopback", "127.9.9.9"),
        ("::1", "loopback", "::1"),
        ("10.1.2.3", "private", "10.1.2.3"),
        ("172.31.0.1", "private", "172.31.0.1"),
        ("192.168.0.1", "private", "192.168.0.1"),
        ("fd12::1", "private", "fd12::1"),
        ("fec0::1", "private", "fec0::1"),
        ("169.254.1.1", "link-local", "169.254.1.1"),
        ("fe80::1", "link-local", "fe80::1"),
        ("100.64.0.1", "shared", "100.64.0.1"),
        ("192.0.2.1", "reserved", "192.0.2.1"),
        ("198.18.0.1", "reserved", "198.18.0.1"),
        ("240.0.0.1", "reserved", "240.0.0.1"),
        ("2001:db8::1", "reserved", "2001:db8::1"),
        ("224.0.0.1", "multicast", "224.0.0.1"),
        ("255.255.255.255", "multicast", "255.255.255.255"),
        ("ff02::1", "multicast", "ff02::1"),
        ("0.0.0.0", "unspecified", "0.0.0.0"),  # noqa: S104  (judged, not bound)
        ("0.1.2.3", "unspecified", "0.1.2.3"),
        ("::", "unspecified", "::"),
        ("169.254.169.254", "metadata", "169.254.169.254"),
        ("fd00:ec2::254", "metadata", "fd00:ec2::254"),
        ("168.63.129.16", "metadata", "168.63.129.16"),
        ("100.100.100.200", "metadata", "100.100.100.200"),
        # IPv6 forms that carry an IPv4 address are judged by it
        ("::ffff:169.254.169.254", "metadata", "169.254.169.254"),
        ("::ffff:127.0.0.1", "loopback", "127.0.0.1"),
        ("::ffff:10.0.0.1", "private", "10.0.0.1"),
        ("::ffff:0:7f00:1", "loopback", "127.0.0.1"),  # IPv4-translated
        ("::127.0.0.1", "loopback", "127.0.0.1"),  # IPv4-compatible
        ("64:ff9b::a9fe:a9fe", "metadata", "169.254.169.254"),  # NAT64
        ("64:ff9b:1::7f00:1", "private", "64:ff9b:1::7f00:1"),  # local-use NAT64
        ("2002:7f00:1::", "loopback", "127.0.0.1"),  # 6to4
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback", "127.0.0.1"),  # Teredo, client 127.0.0.1
        ("::ffff:93.184.215.14", "public", "93.184.215.14"),
    ],
)
def test_addresses_are_judged_by_what_they_reach(address, kind, decisive):
    assert egress.classify(ipaddress.ip_address(address)) == (kind, ipaddress.ip_address(decisive))


def test_the_allow_list_opens_what_it_lists_but_never_metadata_multicast_or_unspecified(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.0.0.0/8", "169.254.0.0/16", "0.0.0.0/0", "::/0"]

    def refusal(address):
        return egress.address_refusal(ipaddress.ip_address(address), egress.PRODUCTION, scheme="https", host=address)

    assert refusal("10.1.2.3") is None and refusal("::ffff:10.1.2.3") is None
    assert refusal("192.168.1.1") is None  # 0.0.0.0/0 lists it: the operator's choice
    never_opened = ("169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "224.0.0.1", "0.0.0.0", "::")  # noqa: S104
    for never in never_opened:
        assert refusal(never), never


def test_the_sandbox_destination_rule_ignores_the_allow_list(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    with pytest.raises(egress.EgressRefused) as caught:
        egress.check_url("http://10.1.2.3/in", egress.LOCAL)

    assert caught.value.code == "sandbox_target_not_local"
    assert egress.check_url("http://localhost:9/in", egress.LOCAL)


def test_every_address_of_a_name_must_be_allowed(resolver):
    resolver.map("mixed.example.test", [PUBLIC_TEST_ADDRESS, "::1"])

    with pytest.raises(egress.EgressRefused) as caught:
        egress.check_url("https://mixed.example.test/", egress.PRODUCTION)

    assert "::1" in caught.value.message and "loopback" in caught.value.message


def test_plain_http_outside_a_sandbox_only_to_an_allow_listed_loopback(settings):
    with pytest.raises(egress.EgressRefused) as public:
        egress.check_url("http://hooks.example.com/", egress.PRODUCTION)
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.0.0.0/8", "127.0.0.1/32"]
    with pytest.raises(egress.EgressRefused) as private:
        egress.check_url("http://10.1.2.3/", egress.PRODUCTION)

    assert public.value.code == private.value.code == "https_required"
    assert egress.check_url("https://10.1.2.3/", egress.PRODUCTION)
    assert egress.check_url("http://127.0.0.1:8080/", egress.PRODUCTION)


# --- the client --------------------------------------------------------------------------


def test_the_client_never_connects_to_a_refused_address(server):
    with egress.client(egress.PRODUCTION, timeout=TIMEOUT) as http, pytest.raises(egress.EgressRefused) as caught:
        http.get(server.url + "/x")

    assert server.requests == [], "a refused address is not even connected to"
    assert "loopback" in caught.value.message


def test_the_client_checks_the_name_at_connection_time(server, resolver):
    port = server.url.rsplit(":", 1)[1]
    resolver.map("late.example.test", "127.0.0.1")

    with egress.client(egress.PRODUCTION, timeout=TIMEOUT) as http, pytest.raises(egress.EgressRefused):
        http.get(f"https://late.example.test:{port}/x")

    assert server.requests == []


def test_plain_http_is_refused_at_connection_time_outside_a_sandbox(resolver):
    with egress.client(egress.PRODUCTION, timeout=TIMEOUT) as http, pytest.raises(egress.EgressRefused) as caught:
        http.get("http://hooks.example.com/x")

    assert "plain http" in caught.value.message


def test_the_client_resolves_once_and_connects_to_the_address_it_checked(server, resolver, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    port = server.url.rsplit(":", 1)[1]
    # A second lookup would get an address nothing listens on.
    resolver.map("once.example.test", "127.0.0.1", "127.0.0.2")

    with egress.client(egress.PRODUCTION, timeout=TIMEOUT) as http:
        response = http.get(f"http://once.example.test:{port}/x")

    assert response.status_code == 200 and len(server.requests) == 1
    assert server.requests[0].headers["host"] == f"once.example.test:{port}", "Host carries the name"
    assert resolver.lookups.count("once.example.test") == 1


def test_a_connection_that_reached_another_address_is_dropped(monkeypatch, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    closed: list[bool] = []

    class Elsewhere:
        def get_extra_info(self, info):
            return ("127.0.0.9", 80) if info == "server_addr" else None

        def close(self):
            closed.append(True)

    backend = egress._GuardedBackend(egress.PRODUCTION, "http")
    monkeypatch.setattr(backend._inner, "connect_tcp", lambda *args, **kwargs: Elsewhere())

    with pytest.raises(egress.EgressRefused) as caught:
        backend.connect_tcp("127.0.0.1", 80)

    assert closed == [True] and "127.0.0.9" in caught.value.message


def test_the_client_follows_no_redirect_uses_no_proxy_and_no_local_socket(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    http = egress.client(egress.PRODUCTION, timeout=TIMEOUT)

    assert http.follow_redirects is False and http.trust_env is False
    with pytest.raises(egress.EgressRefused):
        egress._GuardedBackend(egress.PRODUCTION, "http").connect_unix_socket("/var/run/docker.sock")
    http.close()


def test_a_redirect_is_answered_not_followed(server, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    server.always(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    with egress.client(egress.PRODUCTION, timeout=TIMEOUT) as http:
        response = http.get(server.url + "/x")

    assert response.status_code == 302 and len(server.requests) == 1
