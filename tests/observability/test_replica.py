"""Replica routing: with a replica configured, audience previews read from it; writes and
other reads stay on the primary. (Two databases in the test settings: `replica` mirrors
the test database.)"""

from __future__ import annotations

import pytest
from django.db import connections

from audiences.models import Audience
from marketerapi.dbrouter import ReplicaRouter, replica_reads

pytestmark = pytest.mark.django_db
RULES = {"attr": "region", "op": "eq", "value": "EU"}


def _preview(client):
    return client.post("/api/v1/audiences/preview", {"rules": RULES, "channel": "email"}, format="json")


@pytest.fixture
def routed(monkeypatch):
    """The aliases the router chose for reads, by model; the `replica` alias answers on the
    primary's connection (SQLite's shared in-memory test database would lock a second one)."""
    chosen: list[tuple[str, str | None]] = []
    original = ReplicaRouter.db_for_read

    def spy(self, model, **hints):
        alias = original(self, model, **hints)
        chosen.append((model._meta.label_lower, alias))
        return alias

    monkeypatch.setattr(ReplicaRouter, "db_for_read", spy)
    monkeypatch.setattr(connections._connections, "replica", connections["default"], raising=False)
    return chosen


def test_previews_read_from_the_replica_when_configured(api, settings, routed):
    settings.REPLICA_DATABASE = "replica"
    client = api("analyst")
    routed.clear()

    response = _preview(client)

    assert response.status_code == 200, response.json()
    assert ("audiences.profile", "replica") in routed
    # Authentication, the policy and the audit of the request read the primary.
    assert ("governance.apitoken", None) in routed


def test_without_a_replica_previews_stay_on_the_primary(api, settings, routed):
    settings.REPLICA_DATABASE = None
    client = api("analyst")

    assert _preview(client).status_code == 200

    assert ("audiences.profile", None) in routed
    assert not [model for model, alias in routed if alias == "replica"]


def test_other_reads_and_every_write_stay_on_the_primary(settings):
    settings.REPLICA_DATABASE = "replica"
    router = ReplicaRouter()

    assert router.db_for_read(Audience) is None
    with replica_reads():
        assert router.db_for_read(Audience) == "replica"
        assert router.db_for_write(Audience) == "default"
    assert router.allow_migrate("replica", "audiences") is False
    assert router.allow_migrate("default", "audiences") is True


def test_the_replica_url_setting_adds_the_database(monkeypatch):
    import importlib

    monkeypatch.setenv("DATABASE_REPLICA_URL", "postgres://reader@replica.internal:5432/marketerapi")
    from marketerapi import settings as project_settings

    try:
        reloaded = importlib.reload(project_settings)
        assert reloaded.REPLICA_DATABASE == "replica"
        assert reloaded.DATABASES["replica"]["HOST"] == "replica.internal"
        assert reloaded.DATABASE_ROUTERS == ["marketerapi.dbrouter.ReplicaRouter"]
    finally:
        monkeypatch.delenv("DATABASE_REPLICA_URL")
        importlib.reload(project_settings)
