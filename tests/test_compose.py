"""docker-compose.yml and the Dockerfile, checked by reading them.

Docker does not run on the development machines or in CI, so these tests parse the
files and check what they refer to exists; they do not claim the stack was started.
"""

from __future__ import annotations

import importlib
import re

import pytest
import yaml

from tests.processes import ROOT


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_five_long_running_services_and_a_migration_step(compose):
    assert {"web", "worker", "beat", "db", "redis", "migrate"} <= set(compose["services"])


def test_every_long_running_service_has_a_health_check(compose):
    for name, service in compose["services"].items():
        if name == "migrate":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_database_and_redis_are_the_pinned_major_versions_with_named_volumes(compose):
    services = compose["services"]
    assert services["db"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    volumes = set(compose["volumes"])
    assert {"pgdata", "redisdata"} <= volumes
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "redisdata:/data" in services["redis"]["volumes"]
    for service in services.values():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            assert source in volumes, f"{mount} does not use a named volume"


def test_app_services_read_dot_env_and_point_at_the_compose_services(compose):
    for name in ("web", "worker", "beat", "migrate"):
        service = compose["services"][name]
        assert service["env_file"] == ".env"
        assert service["build"] == "."
        env = service["environment"]
        assert "@db:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379/")
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")


def test_app_services_start_after_a_healthy_database_and_the_migration(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


def test_web_runs_gunicorn_on_the_wsgi_application_that_exists(compose):
    command = " ".join(compose["services"]["web"]["command"])
    assert "gunicorn marketerapi.wsgi:application" in command
    assert hasattr(importlib.import_module("marketerapi.wsgi"), "application")
    assert (ROOT / "scripts" / "healthcheck.py").exists()


def test_worker_and_beat_run_the_celery_app(compose):
    assert compose["services"]["worker"]["command"][:4] == ["celery", "-A", "marketerapi", "worker"]
    assert compose["services"]["beat"]["command"][:4] == ["celery", "-A", "marketerapi", "beat"]
    # beat answers `celery inspect ping` only with remote control on; its healthcheck relies on it.
    assert "--enable-remote-control" in compose["services"]["beat"]["command"]


def test_dockerfile_builds_on_python_311_slim_and_runs_as_a_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, flags=re.MULTILINE)
    assert "pip install -r requirements.txt" in dockerfile
    assert re.search(r"^USER \w+", dockerfile, flags=re.MULTILINE)
    assert "gunicorn marketerapi.wsgi:application" in dockerfile


def test_the_healthcheck_script_reports_a_server_that_is_not_there(monkeypatch):
    from scripts import healthcheck

    monkeypatch.setenv("PORT", "1")  # nothing listens on port 1
    assert healthcheck.main() == 1
