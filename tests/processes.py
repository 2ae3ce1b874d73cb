"""Helpers for tests that start real processes (manage.py, celery, gunicorn).

Such a process must not inherit the test run's own settings by accident, so it gets
the environment of this process minus every variable settings.py reads, plus exactly
what the test names.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "marketerapi" / "settings.py"

# env_bool("DEBUG", …), env_url(\n    "DATABASE_URL", …), os.environ.get("X"), os.getenv("X")
_READS = re.compile(r"""(?:\benv_[a-z]+\(|os\.environ\.get\(|os\.getenv\(|os\.environ\[)\s*["']([A-Z][A-Z0-9_]*)["']""")


def settings_variables() -> list[str]:
    """The environment variables marketerapi/settings.py reads, in order of first use."""
    names = _READS.findall(SETTINGS_FILE.read_text())
    return list(dict.fromkeys(names))


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in settings_variables()}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python manage.py ARGS` from the repository root; output captured as text."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
