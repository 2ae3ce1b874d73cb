"""integrations/apps.py wires up what a process needs in ready(): a process that imported
nothing of integrations still knows every dead-letter kind and every adapter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.processes import ROOT, clean_env


@pytest.mark.slow
def test_a_fresh_process_knows_every_dead_letter_kind_and_adapter():
    code = (
        "import json, django; django.setup(); "
        "from integrations.webhooks.dead_letters import DEAD_LETTER_KINDS; "
        "from integrations.adapters.registry import REGISTRY; "
        "print(json.dumps({'kinds': sorted(DEAD_LETTER_KINDS), 'adapters': sorted(REGISTRY)}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(DEBUG="1", DJANGO_SETTINGS_MODULE="marketerapi.settings"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "kinds": ["destination_push", "outbox_dispatch", "webhook_delivery"],
        "adapters": ["crm", "engagement", "file", "webhook"],
    }
