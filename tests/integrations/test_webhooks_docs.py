"""docs/webhooks.md tells the truth: its verification snippets (run literally) accept our
signatures and refuse a wrong secret, a changed body and a stale timestamp; its retry
table matches the relay's numbers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from integrations.outbox import relay
from integrations.webhooks import delivery, signing
from integrations.webhooks import services as webhooks
from tests.factories import WebhookSubscriptionFactory

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "whsec_docs-test-secret-0123456789abcdef"
BODY = json.dumps({"id": "evt_" + "a" * 32, "type": "consent.updated", "data": {"x": "ü"}}).encode()


def snippet(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```\w+\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"docs/webhooks.md has no code block after <!-- {marker} -->"
    return match.group(1)


@pytest.fixture(scope="module")
def verify():
    namespace: dict = {}
    exec(compile(snippet("verify-python"), str(DOC), "exec"), namespace)  # noqa: S102  (our own docs)
    return namespace["verify_marketerapi_signature"]


def cases() -> dict[str, tuple[bytes, str, str, bool]]:
    now = int(time.time())
    good = signing.signature_header(SECRET, now, BODY)
    stale = signing.signature_header(SECRET, now - 600, BODY)
    future = signing.signature_header(SECRET, now + 600, BODY)
    rotated = f"t={now},v1={'0' * 64},v1={signing.signature(SECRET, now, BODY)}"
    return {
        "ours": (BODY, good, SECRET, True),
        "several v1, one matches": (BODY, rotated, SECRET, True),
        "wrong secret": (BODY, good, "whsec_wrong-secret-0123456789abcdef", False),
        "changed body": (BODY + b" ", good, SECRET, False),
        "stale timestamp": (BODY, stale, SECRET, False),
        "timestamp from the future": (BODY, future, SECRET, False),
        "no signature": (BODY, f"t={now}", SECRET, False),
        "garbage": (BODY, "nonsense", SECRET, False),
        "empty": (BODY, "", SECRET, False),
    }


@pytest.mark.parametrize("case", list(cases()))
def test_the_python_snippet(verify, case):
    body, header, secret, expected = cases()[case]
    assert verify(body, header, secret) is expected
    # and our own check agrees with the documented one
    assert signing.verify_signature(header, body, secret) is expected


def test_the_python_snippet_verifies_a_real_delivery(verify, db, sandbox, monkeypatch):
    from tests.reliability.fixtures import emit
    from tests.reliability.receivers import receivers

    monkeypatch.setattr(delivery, "kick_deliveries", lambda: None)
    monkeypatch.setattr(relay, "kick_relay", lambda: None)
    with receivers() as start:
        hook = start()
        WebhookSubscriptionFactory(environment=sandbox, url=hook.url, secret=SECRET)
        emit(sandbox)
        relay.relay_outbox()
        delivery.deliver_webhooks()
    [got] = hook.received
    assert verify(got.body, got.headers["marketerapi-signature"], SECRET)
    assert not verify(got.body, got.headers["marketerapi-signature"], "whsec_wrong-secret-0123456789abcdef")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_snippet(tmp_path):
    script = tmp_path / "verify.js"
    table = {
        name: [body.decode(), header, secret, expected] for name, (body, header, secret, expected) in cases().items()
    }
    script.write_text(
        snippet("verify-node")
        + "\nconst cases = "
        + json.dumps(table)
        + ";\nconst out = {};\nfor (const [name, [body, header, secret]] of Object.entries(cases)) "
        + "{ out[name] = verifyMarketerapiSignature(Buffer.from(body), header, secret); }\n"
        + "console.log(JSON.stringify(out));\n"
    )
    result = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {name: case[3] for name, case in table.items()}


def _minutes(text: str) -> float:
    hours = re.search(r"(\d+) h", text)
    minutes = re.search(r"(\d+) min", text)
    return (int(hours.group(1)) * 60 if hours else 0) + (int(minutes.group(1)) if minutes else 0)


def test_the_retry_table_matches_the_relay():
    rows = re.findall(r"^\| (\d) \| ([^|]+) \|", DOC.read_text(), re.M)
    caps = {int(n): wait.strip() for n, wait in rows if "dead-lettered" not in wait}
    assert sorted(caps) == list(range(1, delivery.MAX_ATTEMPTS))
    for attempt, text in caps.items():
        cap_seconds = min(delivery.BACKOFF_BASE * delivery.BACKOFF_FACTOR ** (attempt - 1), delivery.BACKOFF_MAX_GAP)
        assert abs(_minutes(text) - cap_seconds / 60) < 1, (attempt, text)
    assert f"up to **{delivery.MAX_ATTEMPTS} times**" in DOC.read_text()
    assert f"**{int(webhooks.PAUSE_AFTER.total_seconds() // 3600)} hours**" in DOC.read_text()


def test_the_documented_test_vector_is_right(verify):
    text = DOC.read_text()
    secret = re.search(r"A test vector: with the secret `([^`]+)`", text).group(1)
    header, body = re.search(r"Marketerapi-Signature: (t=\d+,v1=[0-9a-f]+)\n\n(\{.*\})\n```", text).groups()
    timestamp = int(header.split(",")[0][2:])
    assert signing.verify_signature(header, body.encode(), secret, now=timestamp)
    assert not signing.verify_signature(header, body.encode(), SECRET, now=timestamp)
