"""The network as the integrations tests see it: a resolver that knows only test names, and
no connection anywhere but this machine.

- `resolver` replaces `socket.getaddrinfo`: address literals and `localhost` resolve as
  usual; names under the test domains (`example.com`, `example.test`, `.test`) resolve to
  `PUBLIC_TEST_ADDRESS` unless a test maps them (`resolver.map("hooks.example.test",
  "10.0.0.7")`, or several addresses, or a sequence of answers to play DNS rebinding);
  every other name fails to resolve. No query ever leaves the machine.
- `loopback_only` makes `socket.create_connection` (what httpx connects with) refuse any
  address that is not loopback, so a test can never send traffic elsewhere — not even to
  the public address the test names resolve to.
- `local_targets_allowed` is what most integrations tests run with: the fake vendors listen
  on 127.0.0.1 and play production vendors, so loopback is allow-listed
  (OUTBOUND_ALLOWED_NETWORKS) and file destinations may write under pytest's temporary
  directories. The egress tests switch back to the production defaults (`production_rules`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

# A publicly routable address for test names (IANA's, for example.com). Nothing ever
# connects to it: `loopback_only` refuses.
PUBLIC_TEST_ADDRESS = "93.184.215.14"
TEST_DOMAINS = ("example.com", "example.test", "test", "example", "invalid")
LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1/128"]

# URLs that must never be accepted from production, whatever they look like (the names
# resolve as `attacker_names` says).
INTERNAL_URLS = [
    "http://127.0.0.1:5432/",
    "http://localhost:6379/",
    "https://127.0.0.1/",
    "https://[::1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:127.0.0.1]:6379/",
    "https://169.254.169.254/latest/meta-data/",
    "https://[fd00:ec2::254]/",
    "https://10.0.0.5/",
    "https://172.16.3.4/",
    "https://192.168.1.10/",
    "https://100.64.0.1/",
    "https://169.254.10.1/",
    "https://[fe80::1]/",
    "https://[fd12:3456::1]/",
    "https://0.0.0.0/",
    "https://224.0.0.1/",
    "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "https://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "https://internal.example.test/",  # a DNS name for 10.0.0.7
    "https://split.example.test/",  # one public and one private address
    "https://metadata.google.internal/computeMetadata/v1/",
]


class Resolver:
    """Test names → addresses; see the module docstring."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._names: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def map(self, name: str, *answers: str | Sequence[str]) -> None:
        """`name` resolves to the answers in turn (the last one stays): each answer is one
        address or a list of them."""
        self._names[name.lower().rstrip(".")] = [[a] if isinstance(a, str) else list(a) for a in answers]

    def _answer(self, name: str) -> list[str] | None:
        key = name.lower().rstrip(".")
        answers = self._names.get(key)
        if answers:
            return answers.pop(0) if len(answers) > 1 else answers[0]
        if any(key == d or key.endswith("." + d) for d in TEST_DOMAINS):
            return [PUBLIC_TEST_ADDRESS]
        return None

    def __call__(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        try:
            ipaddress.ip_address(name.split("%")[0])
            literal = True
        except ValueError:
            literal = False
        if literal or name.lower() in ("localhost", "localhost.localdomain"):
            return self._real(host, port, family, type, proto, flags)
        addresses = self._answer(name)
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} is not a test name (no DNS in tests)")
        out = []
        for address in addresses:
            ip = ipaddress.ip_address(address)
            fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            if family not in (0, socket.AF_UNSPEC, fam):
                continue
            sockaddr = (address, int(port or 0), 0, 0) if ip.version == 6 else (address, int(port or 0))
            out.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} has no address of that family")
        return out


@pytest.fixture(autouse=False)
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    fake = Resolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield fake


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.create_connection

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        host = str(address[0])
        try:
            loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ConnectionRefusedError(f"tests connect to this machine only, not to {host}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture
def local_targets_allowed(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = list(LOOPBACK_NETWORKS)
    settings.DESTINATION_FILE_ROOTS = [str(tmp_path_factory.getbasetemp())]


@pytest.fixture
def production_rules(settings: Any) -> None:
    """The outbound rules of a deployment with no operator settings."""
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.DESTINATION_FILE_ROOTS = []


@pytest.fixture
def attacker_names(resolver: Resolver) -> Resolver:
    """Names an attacker controls, resolving into this network."""
    resolver.map("internal.example.test", "10.0.0.7")
    resolver.map("split.example.test", [PUBLIC_TEST_ADDRESS, "192.168.0.2"])
    resolver.map("metadata.google.internal", "169.254.169.254")
    return resolver


def refusal_of(response: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the 422 problem, its first `errors` entry)."""
    body = response.json()
    assert response.status_code == 422, body
    return body, body["errors"][0]
