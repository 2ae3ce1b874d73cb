"""The integrations settings come from the environment through the typed readers
(marketerapi/env.py), with their defaults when unset and a loud failure on a bad value."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from marketerapi.env import ImproperSetting, env_float
from tests.processes import ROOT, clean_env

NAMES = [
    "WEBHOOK_CONNECT_TIMEOUT",
    "WEBHOOK_READ_TIMEOUT",
    "WEBHOOK_CONCURRENCY",
    "DESTINATION_BREAKER_THRESHOLD",
    "DESTINATION_BREAKER_COOLDOWN",
    "DESTINATION_SANDBOX_FILE_ROOTS",
    "DESTINATION_FILE_ROOTS",
    "OUTBOUND_ALLOWED_NETWORKS",
]


def settings_in_a_process(**env: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {NAMES!r}}}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(DEBUG="1", DJANGO_SETTINGS_MODULE="marketerapi.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_the_defaults_when_nothing_is_set():
    result = settings_in_a_process()

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "WEBHOOK_CONNECT_TIMEOUT": 3.0,
        "WEBHOOK_READ_TIMEOUT": 10.0,
        "WEBHOOK_CONCURRENCY": 8,
        "DESTINATION_BREAKER_THRESHOLD": 5,
        "DESTINATION_BREAKER_COOLDOWN": 60.0,
        "DESTINATION_SANDBOX_FILE_ROOTS": [],
        "DESTINATION_FILE_ROOTS": [],
        "OUTBOUND_ALLOWED_NETWORKS": [],
    }


@pytest.mark.slow
def test_each_is_read_from_the_environment():
    result = settings_in_a_process(
        WEBHOOK_CONNECT_TIMEOUT="1.5",
        WEBHOOK_READ_TIMEOUT="20",
        WEBHOOK_CONCURRENCY="2",
        DESTINATION_BREAKER_THRESHOLD="3",
        DESTINATION_BREAKER_COOLDOWN="90",
        DESTINATION_SANDBOX_FILE_ROOTS="/srv/drops, /tmp/drops",
        DESTINATION_FILE_ROOTS="/srv/exports",
        OUTBOUND_ALLOWED_NETWORKS="10.20.0.0/16, fd00:1::/64,127.0.0.1",
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "WEBHOOK_CONNECT_TIMEOUT": 1.5,
        "WEBHOOK_READ_TIMEOUT": 20.0,
        "WEBHOOK_CONCURRENCY": 2,
        "DESTINATION_BREAKER_THRESHOLD": 3,
        "DESTINATION_BREAKER_COOLDOWN": 90.0,
        "DESTINATION_SANDBOX_FILE_ROOTS": ["/srv/drops", "/tmp/drops"],
        "DESTINATION_FILE_ROOTS": ["/srv/exports"],
        "OUTBOUND_ALLOWED_NETWORKS": ["10.20.0.0/16", "fd00:1::/64", "127.0.0.1"],
    }


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WEBHOOK_READ_TIMEOUT", "ten", "WEBHOOK_READ_TIMEOUT='ten' is not a number."),
        ("WEBHOOK_CONNECT_TIMEOUT", "0", "WEBHOOK_CONNECT_TIMEOUT=0 is below the minimum of 0.1."),
        ("WEBHOOK_CONCURRENCY", "0", "WEBHOOK_CONCURRENCY=0 is below the minimum of 1."),
        ("DESTINATION_BREAKER_THRESHOLD", "five", "DESTINATION_BREAKER_THRESHOLD='five' is not a whole number."),
        ("OUTBOUND_ALLOWED_NETWORKS", "10.0.0.0/8,intranet", "OUTBOUND_ALLOWED_NETWORKS: 'intranet' is not a network"),
        ("OUTBOUND_ALLOWED_NETWORKS", "10.0.0.0/33", "OUTBOUND_ALLOWED_NETWORKS: '10.0.0.0/33' is not a network"),
    ],
)
@pytest.mark.slow
def test_a_bad_value_stops_the_process_naming_it(variable, value, message):
    result = settings_in_a_process(**{variable: value})

    assert result.returncode != 0
    assert "ImproperSetting" in result.stderr and message in result.stderr


def test_env_float_reads_numbers_and_refuses_what_is_not_a_finite_one():
    assert env_float("T", 3.0, environ={"T": " 2.5 "}) == 2.5
    assert env_float("T", 3.0, environ={"T": ""}) == 3.0
    assert env_float("T", 3.0, environ={}) == 3.0
    for raw in ("nan", "inf", "1,5"):
        with pytest.raises(ImproperSetting, match=r"T=.* is not a"):
            env_float("T", 3.0, environ={"T": raw})
    with pytest.raises(ImproperSetting, match="T=500 is above the maximum of 300"):
        env_float("T", 3.0, maximum=300, environ={"T": "500"})
