"""The `webhook` and `file` adapters, and what every HTTP adapter shares: timeouts,
retries on 5xx, Retry-After, and config validation with pointers."""

from __future__ import annotations

import csv
import io
import json
import os
import time

import pytest

from integrations.adapters import Checkpoint, ServerFailure, VendorRejected
from integrations.adapters.file import FileAdapter
from integrations.adapters.webhook import WebhookAdapter
from integrations.destinations.breakers import Breaker
from integrations.webhooks.signing import verify_signature

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")


def members(n: int) -> list[dict]:
    return [{"external_id": f"w{i}", "email": f"w{i}@example.test", "attributes": {"tier": "gold"}} for i in range(n)]


# --- webhook ----------------------------------------------------------------------------


def test_members_are_posted_as_json_batches_with_idempotency_keys(server, sleeps):
    hook = WebhookAdapter({"url": server.url + "/in", "batch_size": 2}, {}, label="crm-hook", reference="push-7")

    result = hook.push_members(members(3), ["gone-1"])

    bodies = [c.json for c in server.calls("/in")]
    assert [(b["operation"], b["count"], b["offset"]) for b in bodies] == [
        ("remove", 1, 0),
        ("add", 2, 0),
        ("add", 1, 2),
    ]
    assert bodies[1]["members"][0] == {"external_id": "w0", "email": "w0@example.test", "attributes": {"tier": "gold"}}
    assert bodies[0]["destination"] == "crm-hook" and bodies[0]["reference"] == "push-7"
    keys = [c.headers["idempotency-key"] for c in server.calls("/in")]
    assert keys == ["push-7:removed:0", "push-7:added:0", "push-7:added:2"]
    assert result.delivered == 4 and result.calls == 3


def test_bearer_token_and_signature_when_the_credentials_carry_them(server, sleeps):
    secret = "whsec_" + "s" * 30
    WebhookAdapter({"url": server.url}, {"token": "tok-123456", "signing_secret": secret}).push_members(members(1), [])

    call = server.calls()[0]
    assert call.headers["authorization"] == "Bearer tok-123456"
    assert verify_signature(call.headers["marketerapi-signature"], call.body, secret)


def test_a_5xx_is_retried_twice_then_fails_and_counts_on_the_breaker(server, sleeps):
    server.always(500)
    breaker = Breaker("test:webhook-500")

    with pytest.raises(ServerFailure) as caught:
        WebhookAdapter({"url": server.url}, {}, breaker=breaker).push_members(members(1), [])

    assert len(server.calls()) == 3
    assert sleeps == [0.5, 1.0]
    assert "500" in caught.value.message
    assert breaker.snapshot().failures == 3


def test_a_503_then_success_is_delivered(server, sleeps):
    server.script(503, times=2)
    result = WebhookAdapter({"url": server.url}, {}).push_members(members(2), [])
    assert result.delivered == 2 and len(server.calls()) == 3


def test_429_honours_retry_after(server, sleeps):
    server.script(429, {"error": "slow down"}, {"Retry-After": "3"})
    WebhookAdapter({"url": server.url}, {}).push_members(members(1), [])
    assert sleeps == [3.0]


def test_a_hanging_receiver_times_out_at_the_read_timeout(server, sleeps):
    server.always(200, delay=3)
    hook = WebhookAdapter({"url": server.url, "read_timeout": 0.2, "connect_timeout": 0.5}, {})

    started = time.monotonic()
    with pytest.raises(ServerFailure) as caught:
        hook.push_members(members(1), [])

    assert "timeout" in caught.value.message
    assert time.monotonic() - started < 2.5  # three attempts of 0.2 s, not three of 3 s


def test_a_slow_receiver_within_the_timeout_is_fine(server, sleeps):
    server.always(200, {"ok": True}, delay=0.2)
    result = WebhookAdapter({"url": server.url, "read_timeout": 2}, {}).push_members(members(1), [])
    assert result.delivered == 1


def test_a_4xx_fails_at_once(server, sleeps):
    server.always(404, {"message": "no such hook"})
    with pytest.raises(VendorRejected) as caught:
        WebhookAdapter({"url": server.url}, {}).push_members(members(1), [])
    assert caught.value.status == 404 and len(server.calls()) == 1


def test_connection_refused_is_a_server_failure(sleeps):
    with pytest.raises(ServerFailure) as caught:
        WebhookAdapter({"url": "http://127.0.0.1:9/closed", "connect_timeout": 0.5}, {}).push_members(members(1), [])
    assert "connection error" in caught.value.message


def test_webhook_config_problems_have_pointers_and_hints():
    problems = WebhookAdapter.validate_config(
        {"url": "http://hooks.example.com/x", "batch_size": 0, "headers": {"X-Api-Key": "abc"}, "token": "t"}
    )
    assert [(p.pointer, p.code) for p in problems] == [
        ("/token", "unknown_config_key"),
        ("/batch_size", "out_of_range"),
    ]
    assert "credentials" in problems[0].hint

    later = WebhookAdapter.validate_config({"url": "http://hooks.example.com/x", "headers": {"X-Api-Key": "abc"}})
    assert [(p.pointer, p.code) for p in later] == [("/headers/X-Api-Key", "secret_in_config")]
    assert [p.code for p in WebhookAdapter.validate_config({"url": "https://u:p@hooks.example.com"})] == [
        "url_has_credentials"
    ]
    assert [p.code for p in WebhookAdapter.validate_config({})] == ["required"]


def test_where_a_webhook_may_point_depends_on_the_environment(production_rules):
    """The shape is the adapter's (validate_config); where it may point, the environment's
    outbound rules (integrations/egress.py), checked by target_problems."""
    outside = [
        (url, [p.code for p in WebhookAdapter.target_problems({"url": url}, sandbox=False)])
        for url in (
            "http://hooks.example.com/x",
            "http://169.254.169.254/latest",
            "http://127.0.0.1:8080/hook",
            "https://hooks.example.com/x",
        )
    ]
    assert outside == [
        ("http://hooks.example.com/x", ["https_required"]),
        ("http://169.254.169.254/latest", ["url_not_allowed"]),
        ("http://127.0.0.1:8080/hook", ["url_not_allowed"]),
        ("https://hooks.example.com/x", []),
    ]


def test_sandbox_rule_for_webhooks_is_a_loopback_host():
    assert WebhookAdapter.target_problems({"url": "http://localhost:9000/x"}, sandbox=True) == []
    assert WebhookAdapter.target_problems({"url": "http://[::1]:9000/x"}, sandbox=True) == []
    (problem,) = WebhookAdapter.target_problems({"url": "https://hooks.example.com/x"}, sandbox=True)
    assert problem.code == "sandbox_target_not_local" and "127.0.0.1" in problem.hint


# --- file -------------------------------------------------------------------------------


def test_jsonl_drop_has_one_line_per_member(tmp_path, sleeps):
    drop = FileAdapter({"directory": str(tmp_path)}, reference="push-9")

    result = drop.push_members(members(2), ["gone-1"])

    assert sorted(os.listdir(tmp_path)) == [
        "marketerapi-push-9-added-0001.jsonl",
        "marketerapi-push-9-removed-0001.jsonl",
    ]
    lines = (tmp_path / "marketerapi-push-9-added-0001.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"tier": "gold", "external_id": "w0", "email": "w0@example.test", "operation": "add"}
    assert result.delivered == 3


def test_csv_drop_has_a_header_and_rows_per_file(tmp_path, sleeps):
    drop = FileAdapter(
        {"directory": str(tmp_path), "format": "csv", "rows_per_file": 2, "prefix": "crm"}, reference="p1"
    )

    drop.push_members(members(3), [])

    assert sorted(os.listdir(tmp_path)) == ["crm-p1-added-0001.csv", "crm-p1-added-0002.csv"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "crm-p1-added-0001.csv").read_text())))
    assert rows[0] == {"external_id": "w0", "operation": "add", "email": "w0@example.test", "tier": "gold"}


def test_file_drops_are_atomic_temp_file_then_rename(tmp_path, sleeps, monkeypatch):
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((os.path.dirname(src), os.path.basename(src), os.path.basename(dst)))
        assert not os.path.exists(dst)  # the final name appears only by the rename
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    FileAdapter({"directory": str(tmp_path)}, reference="r").push_members(members(1), [])

    ((directory, tmp_name, final),) = renames
    assert directory == str(tmp_path)
    assert tmp_name.startswith(".marketerapi-r-added-0001.jsonl.tmp-") and final == "marketerapi-r-added-0001.jsonl"


def test_a_failed_write_leaves_no_file_behind(tmp_path, sleeps, monkeypatch):
    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)

    with pytest.raises(ServerFailure) as caught:
        FileAdapter({"directory": str(tmp_path)}, reference="r").push_members(members(1), [])

    assert os.listdir(tmp_path) == []
    assert "No space left" in caught.value.message


def test_a_retried_push_rewrites_the_same_files(tmp_path, sleeps):
    drop = FileAdapter({"directory": str(tmp_path)}, reference="push-3")
    drop.push_members(members(2), [])
    drop.push_members(members(2), [])
    assert os.listdir(tmp_path) == ["marketerapi-push-3-added-0001.jsonl"]


def test_a_checkpoint_skips_the_files_already_dropped(tmp_path, sleeps):
    drop = FileAdapter({"directory": str(tmp_path), "rows_per_file": 2}, reference="p")
    drop.push_members(members(5), [], Checkpoint({"added": 2}))
    assert sorted(os.listdir(tmp_path)) == ["marketerapi-p-added-0002.jsonl", "marketerapi-p-added-0003.jsonl"]


def test_a_missing_directory_is_unavailable_and_counts_on_the_breaker(tmp_path, sleeps):
    breaker = Breaker("test:file-missing")
    drop = FileAdapter({"directory": str(tmp_path / "not-mounted")}, breaker=breaker)
    with pytest.raises(ServerFailure):
        drop.push_members(members(1), [])
    assert breaker.snapshot().failures == 1
    assert drop.health().ok is False


def test_file_health_writes_and_removes_a_test_file(tmp_path):
    health = FileAdapter({"directory": str(tmp_path)}).health()
    assert health.ok and os.listdir(tmp_path) == []


def test_file_config_needs_an_absolute_local_directory():
    assert [p.code for p in FileAdapter.validate_config({"directory": "relative/dir"})] == ["invalid_directory"]
    assert [p.code for p in FileAdapter.validate_config({"directory": "sftp://host/dir"})] == ["invalid_directory"]
    assert [(p.pointer, p.code) for p in FileAdapter.validate_config({"directory": "/x", "format": "xml"})] == [
        ("/format", "invalid_choice")
    ]
    assert FileAdapter.validate_config({"directory": "/var/drops", "format": "csv"}) == []


def test_file_sends_write_one_row_per_recipient(tmp_path, sleeps):
    FileAdapter({"directory": str(tmp_path)}, reference="s").send(
        {"properties": {"c": 1}, "recipients": [{"external_id": "r1", "properties": {"coupon": "X"}}]}
    )
    (line,) = (tmp_path / "marketerapi-s-recipients-0001.jsonl").read_text().splitlines()
    assert json.loads(line) == {"external_id": "r1", "operation": "send", "properties": {"c": 1, "coupon": "X"}}
