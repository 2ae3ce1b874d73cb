"""The one outbound-URL guard: where marketerapi may send an HTTP request, from which environment.

Every outbound HTTP call of the product — webhook deliveries, and every call of every
destination adapter (webhook, crm token and REST, engagement) — goes through a client made
here, and every URL a person configures is checked here when it is saved. The rules:

- **Outside a sandbox** (pilot, production: real customers' data): `https://` only; the
  host is resolved and *every* address it resolves to must be publicly routable. Refused:
  loopback, private (RFC 1918, unique-local, site-local), link-local, shared (100.64/10),
  multicast and broadcast, reserved and documentation ranges, unspecified, the cloud
  metadata addresses, and the IPv6 forms that carry one of those inside (IPv4-mapped,
  -translated, -compatible, NAT64, 6to4, Teredo). An operator may open networks it really
  needs with `OUTBOUND_ALLOWED_NETWORKS` (CIDRs); plain `http://` is then accepted only to
  allow-listed loopback addresses (a receiver on the same machine: nothing leaves it).
- **Sandbox webhooks** (synthetic data): http or https, to public addresses or loopback
  (a developer's local receiver), plus the allow-listed networks.
- **Sandbox destinations** (`LOCAL`): loopback only — "local targets allowed, nothing else".
- Never, whatever the allow-list says: metadata addresses, unspecified, multicast.

**No DNS rebinding.** The client's transport resolves the host once, checks every address,
connects to a checked address itself (TLS still verifies the certificate of the host
*name*, and Host carries the name), and checks the connected socket's peer address again.
A refused address is never connected to, so a refusal says nothing about whether a port is
open. Redirects are not followed by any client made here. Proxies from the environment are
not used (`trust_env=False`): the checks apply to where the request really goes.

A refusal is an `EgressRefused` (code, message, hint): the services turn it into a 422
naming the field; a delivery or an adapter call turns it into a failed attempt.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpcore
import httpx
from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "OUTBOUND_ALLOWED_NETWORKS"
SETTING_HINT = (
    f"An operator can allow a private network that must be reached with {SETTING} (CIDRs, docs/operations.md)."
)

# Cloud metadata and platform endpoints: credentials live behind these. Refused even when a
# network holding them is allow-listed. (169.254.169.254: AWS, GCP, Azure, OpenStack,
# DigitalOcean, Oracle; 169.254.170.2/.23: AWS ECS and EKS credentials; fd00:ec2::254/::23:
# AWS over IPv6; 100.100.100.200: Alibaba; 169.254.0.23: Tencent; 192.0.0.192: Oracle
# (legacy); 168.63.129.16: Azure's host endpoint, a public address.)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "169.254.0.23",
        "100.100.100.200",
        "192.0.0.192",
        "168.63.129.16",
        "fd00:ec2::254",
        "fd00:ec2::23",
    )
)
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})

_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")

# What kind of address: "public" is the only kind reachable without the allow-list.
PUBLIC = "public"
LOOPBACK = "loopback"
KIND_TEXT = {
    "public": "a public address",
    "loopback": "loopback",
    "private": "a private address",
    "link-local": "link-local",
    "shared": "shared address space (carrier-grade NAT, 100.64.0.0/10)",
    "reserved": "a reserved or non-routable address",
    "multicast": "multicast or broadcast",
    "unspecified": "the unspecified address",
    "metadata": "a cloud metadata address",
}
# Kinds no allow-list opens.
NEVER = frozenset({"metadata", "unspecified", "multicast"})


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and reaches, if it is one of those forms."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _TRANSLATED or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(ip: Address) -> tuple[str, Address]:
    """(the kind of `ip`, the address that decides it): an IPv6 form that carries an IPv4
    address is judged by that address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return classify(inner)
    if ip in METADATA_ADDRESSES:
        return "metadata", ip
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return "unspecified", ip
    if ip.is_multicast or ip == _BROADCAST:
        return "multicast", ip
    if ip.is_loopback:
        return "loopback", ip
    if ip.is_link_local:
        return "link-local", ip
    if ip in _SHARED:
        return "shared", ip
    if isinstance(ip, ipaddress.IPv6Address) and (ip in _SITE_LOCAL or ip in _NAT64_LOCAL):
        return "private", ip
    if any(ip.version == n.version and ip in n for n in _PRIVATE):
        return "private", ip
    if ip.is_reserved or not ip.is_global:
        return "reserved", ip
    return PUBLIC, ip


def allowed_networks() -> list[Network]:
    """OUTBOUND_ALLOWED_NETWORKS, parsed (settings.py already refused bad entries)."""
    return [ipaddress.ip_network(str(n).strip(), strict=False) for n in getattr(settings, SETTING, []) or []]


def _allow_listed(ip: Address, networks: Sequence[Network]) -> bool:
    return any(ip.version == n.version and ip in n for n in networks)


# --- policies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """Where requests may go from one kind of place (see the module docstring)."""

    name: str
    public: bool  # publicly routable addresses
    loopback: bool  # loopback addresses without the allow-list
    allow_list: bool  # OUTBOUND_ALLOWED_NETWORKS applies
    plain_http: bool  # http:// anywhere it may go (else only to allow-listed loopback)
    sandbox: bool  # the policy of a sandbox (synthetic data)
    refusal_code: str = "url_not_allowed"
    hint: str = ""


PRODUCTION = Policy(
    "outside a sandbox",
    public=True,
    loopback=False,
    allow_list=True,
    plain_http=False,
    sandbox=False,
    hint="Use the public https address of the receiver or vendor. " + SETTING_HINT,
)
SANDBOX = Policy(
    "a sandbox",
    public=True,
    loopback=True,
    allow_list=True,
    plain_http=True,
    sandbox=True,
    hint="Use a public address, or a receiver on this machine (127.0.0.1, localhost). " + SETTING_HINT,
)
LOCAL = Policy(
    "a sandbox destination",
    public=False,
    loopback=True,
    allow_list=False,
    plain_http=True,
    sandbox=True,
    refusal_code="sandbox_target_not_local",
    hint="Point it at http://127.0.0.1:<port>/… or http://localhost:<port>/… (a receiver on this machine), or "
    "create the destination in pilot or production.",
)


def webhook_policy(*, sandbox: bool) -> Policy:
    """Webhook subscriptions (events to a subscriber)."""
    return SANDBOX if sandbox else PRODUCTION


def destination_policy(*, sandbox: bool) -> Policy:
    """Destination adapters: a sandbox never reaches a real system."""
    return LOCAL if sandbox else PRODUCTION


# --- refusals ---------------------------------------------------------------------------


class EgressRefused(Exception):
    """A URL or an address this policy does not send to. Not an httpx error on purpose: it
    is not a failure of the receiver, and must not be retried or counted as one."""

    def __init__(self, code: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def address_refusal(ip: Address, policy: Policy, *, scheme: str, host: str) -> str | None:
    """Why `policy` does not connect to `ip` for `scheme` (None: it does)."""
    kind, decisive = classify(ip)
    listed = policy.allow_list and kind not in NEVER and _allow_listed(decisive, allowed_networks())
    if kind == PUBLIC:
        permitted = policy.public or listed
    elif kind == LOOPBACK:
        permitted = policy.loopback or listed
    else:
        permitted = listed
    shown = host if host.strip("[]") == str(ip) else f"{host} ({ip})"
    if not permitted:
        what = KIND_TEXT[kind]
        if decisive != ip:
            what += f", {decisive} inside"
        return f"{shown} is {what}: requests from {policy.name} are not sent there."
    if scheme == "http" and not policy.plain_http and not (kind == LOOPBACK and listed):
        return f"{shown}: plain http is not sent from {policy.name}."
    return None


def parse(url: Any, *, what: str = "URL") -> SplitResult:
    """An absolute http(s) URL without user:password@, or EgressRefused (invalid_url,
    url_has_credentials)."""
    example = "https://hooks.example.com/marketerapi"
    if not isinstance(url, str) or not url.strip():
        raise EgressRefused("invalid_url", f"The {what} must be a non-empty string.", f"Use e.g. {example}.")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise EgressRefused("invalid_url", f"{url!r} is not an absolute http(s) URL.", f"Use {example}.") from None
    if parts.scheme not in ("http", "https") or not host:
        raise EgressRefused("invalid_url", f"{url!r} is not an absolute http(s) URL.", f"Use {example}.")
    if parts.username or parts.password:
        raise EgressRefused(
            "url_has_credentials",
            f"The {what} carries a user name or password.",
            "Remove user:password@ from the URL: it would be stored and shown in clear.",
        )
    return parts


def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (an address literal: itself), in the resolver's order.
    Raises OSError when it does not resolve."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    out: list[Address] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if ip not in out:
            out.append(ip)
    if not out:
        raise OSError(f"{host} has no address")
    return out


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _https_refusal(parts: SplitResult, policy: Policy, what: str) -> EgressRefused:
    return EgressRefused(
        "https_required",
        f"The {what} must use https: requests from {policy.name} carry real customers' data.",
        f"Use {parts.geturl().replace('http://', 'https://', 1)}. Plain http is accepted only in a sandbox, or to a "
        f"loopback address listed in {SETTING}.",
    )


def check_url(url: Any, policy: Policy, *, what: str = "URL") -> list[Address]:
    """Check a URL someone configures: its shape, its scheme, and every address its host
    resolves to now. Returns the addresses; raises EgressRefused with a code, a message
    naming the host and the reason, and a hint. (The transport checks again at every
    connection: DNS may change after this.)"""
    parts = parse(url, what=what)
    host = parts.hostname or ""
    if host.rstrip(".").lower() in METADATA_NAMES:
        raise EgressRefused(policy.refusal_code, f"{host} is a cloud metadata endpoint.", policy.hint)
    port = parts.port or _default_port(parts.scheme)
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError, ValueError):
        raise EgressRefused(
            "url_not_resolvable",
            f"The host {host} of the {what} does not resolve to an address.",
            "Check the host name for typos, and that it is published in DNS; then send the URL again.",
        ) from None
    for ip in addresses:
        reason = address_refusal(ip, policy, scheme="https", host=host)
        if reason:
            raise EgressRefused(policy.refusal_code, reason, policy.hint)
    if parts.scheme == "http" and not policy.plain_http:
        for ip in addresses:
            if address_refusal(ip, policy, scheme="http", host=host):
                raise _https_refusal(parts, policy, what)
    return addresses


# --- the transport --------------------------------------------------------------------

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves once, checks every address, connects to a checked one, checks the peer."""

    def __init__(self, policy: Policy, scheme: str) -> None:
        self.policy = policy
        self.scheme = scheme
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if host.rstrip(".").lower() in METADATA_NAMES:
            raise EgressRefused(self.policy.refusal_code, f"{host} is a cloud metadata endpoint.", self.policy.hint)
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError, ValueError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve ({exc})") from None
        for ip in addresses:
            reason = address_refusal(ip, self.policy, scheme=self.scheme, host=host)
            if reason:
                raise EgressRefused(self.policy.refusal_code, reason, self.policy.hint)
        failure: Exception | None = None
        for ip in addresses:
            try:
                stream = self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            peer = stream.get_extra_info("server_addr")
            connected = ipaddress.ip_address(str(peer[0]).split("%")[0]) if peer else None
            if connected != ip:
                stream.close()
                raise EgressRefused(
                    self.policy.refusal_code,
                    f"The connection to {host} reached {connected}, not the checked address {ip}.",
                    self.policy.hint,
                )
            return stream
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise EgressRefused(self.policy.refusal_code, "Requests are not sent to local sockets.", self.policy.hint)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport, with its connection pool built on the guarded network backend."""

    def __init__(
        self,
        policy: Policy,
        scheme: str,
        *,
        limits: httpx.Limits = DEFAULT_LIMITS,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        # httpx builds its pool without a way to pass a network backend: build the same pool
        # with ours (tests/integrations/test_egress.py fails if this stops taking effect).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy, scheme),
        )


def client(
    policy: Policy,
    *,
    timeout: httpx.Timeout,
    headers: dict[str, str] | None = None,
    limits: httpx.Limits = DEFAULT_LIMITS,
) -> httpx.Client:
    """An httpx client whose every connection obeys `policy`; redirects are not followed,
    proxies from the environment are not used."""
    return httpx.Client(
        timeout=timeout,
        headers=headers,
        follow_redirects=False,
        trust_env=False,
        transport=GuardedTransport(policy, "https", limits=limits),
        mounts={"http://": GuardedTransport(policy, "http", limits=limits)},
    )
