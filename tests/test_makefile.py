"""The Makefile's entry points and the bootstrap that every target runs first."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.processes import ROOT


@pytest.mark.slow
def test_make_lists_the_documented_targets():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True)

    targets = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"run", "test", "lint", "bench", "migrate", "clean"} <= targets


def test_make_run_calls_sandbox_reset_and_seed_demo_as_documented():
    script = (ROOT / "scripts" / "run.sh").read_text()

    assert "manage sandbox_reset --environment sandbox --profiles 20000 --seed 42 --if-empty" in script
    assert "manage seed_demo" in script
    assert "export DEBUG=${DEBUG:-1}" in script


@pytest.mark.slow
def test_bootstrap_refuses_an_old_python_with_a_clear_message(tmp_path):
    # given a PATH whose only python3 is 3.9, and no virtualenv yet
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text('#!/bin/sh\n[ "$1" = "--version" ] && echo "Python 3.9.18" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    for tool in ("dirname", "cat", "sha256sum", "cut", "rm"):
        found = shutil.which(tool)
        assert found, tool
        os.symlink(found, bin_dir / tool)
    env = {"PATH": str(bin_dir), "VENV": str(tmp_path / "venv"), "HOME": str(tmp_path)}

    # when the bootstrap runs
    result = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "bootstrap.sh")], env=env, capture_output=True, text=True, check=False
    )

    # then it stops before creating anything and says what to install
    assert result.returncode == 1
    assert "needs Python 3.11 or newer" in result.stderr
    assert "Python 3.9.18" in result.stderr
    assert "PYTHON=/path/to/python3.11" in result.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.slow
def test_bootstrap_installs_once_and_again_only_when_the_interpreter_or_requirements_change(tmp_path):
    # given a virtualenv whose python records what pip is asked to do
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "pip-calls"
    version = tmp_path / "version"
    version.write_text("Python 3.11.9")
    fake = venv / "bin" / "python"
    fake.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = "--version" ] && cat {version} && exit 0\n'
        f'[ "$1" = "-m" ] && echo "$*" >> {calls} && exit 0\n'
        "exit 0\n"
    )
    fake.chmod(0o755)
    env = {**os.environ, "VENV": str(venv)}

    def bootstrap() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/bash", str(ROOT / "scripts" / "bootstrap.sh")], env=env, capture_output=True, text=True, check=True
        )

    # when it runs twice, then once more after the interpreter changed
    first = bootstrap()
    second = bootstrap()
    version.write_text("Python 3.11.10")
    third = bootstrap()

    # then pip ran on the first and third runs only
    assert "Installing requirements-dev.txt" in first.stdout
    assert second.stdout == ""
    assert "Installing requirements-dev.txt" in third.stdout
    assert (
        calls.read_text().splitlines()
        == ["-m pip install --disable-pip-version-check --quiet -r requirements-dev.txt"] * 2
    )


@pytest.mark.slow
def test_the_readme_token_command_works_from_a_second_shell_with_make_runs_settings(tmp_path):
    """Issue 11: `make token` in a new shell (no DEBUG, no SECRET_KEY exported, as a newcomer
    has it) issues a token against the database `make run` set up, instead of a traceback."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    readme = (ROOT / "README.md").read_text()
    assert "make token" in readme
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    fresh_shell = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"}
        and not key.startswith(("CELERY_", "PYTEST_"))
    }
    env = {**fresh_shell, "VENV": str(ROOT / ".venv"), "DATABASE_URL": database}
    # what `make run` did in the first shell: migrate and create the demo users
    subprocess.run(["make", "-s", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    seeded = {**env, "DEBUG": "1"}
    subprocess.run(
        [str(ROOT / ".venv/bin/python"), "manage.py", "seed_demo"],
        cwd=ROOT,
        env=seeded,
        check=True,
        capture_output=True,
    )

    result = subprocess.run(["make", "-s", "token"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "mk_sandbox_" in result.stdout and "demo-developer" in result.stdout


def test_the_readme_says_how_to_change_the_port_and_run_sh_honours_it():
    readme = (ROOT / "README.md").read_text()
    script = (ROOT / "scripts" / "run.sh").read_text()

    assert "ADDR=127.0.0.1:8080 make run" in readme
    assert "ADDR=${ADDR:-127.0.0.1:8000}" in script and 'manage runserver "$ADDR"' in script
    assert "export SITE_URL=${SITE_URL:-http://" in script


def test_the_readme_names_only_folders_and_documents_that_exist():
    import re

    readme = (ROOT / "README.md").read_text()
    for folder in re.findall(r"^\| `([a-z_]+)/` \|", readme, flags=re.M):
        assert (ROOT / folder).is_dir(), folder
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link
    assert "PRODUCT.md" not in readme and "STYLE.md" not in readme
