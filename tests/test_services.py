"""The services a deployment runs on, used for real when they are configured.

CI sets DATABASE_URL, REDIS_URL and CELERY_BROKER_URL with REQUIRE_SERVICES=1; then a
suite that silently fell back to SQLite or the in-process cache fails here.
"""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from tests.conftest import require_service

pytestmark = pytest.mark.services


@pytest.mark.django_db
def test_the_database_is_postgresql_when_configured():
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", f"DATABASE_URL is {settings.DATABASE_URL.split(':', 1)[0]}://, not postgres://")

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        (version,) = cursor.fetchone()

    assert int(version) >= 150000, "PostgreSQL 15 or newer, as in docker-compose.yml"
    # Persistent connections are on: see CONN_MAX_AGE in settings.py and bench/results.md.
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] > 0


def test_the_cache_is_redis_and_round_trips_when_configured():
    if not settings.REDIS_URL:
        require_service("Redis", "REDIS_URL is not set")
    assert settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    key = f"test:{uuid.uuid4().hex}"

    try:
        cache.set(key, {"n": 1}, timeout=30)
        value = cache.get(key)
    except Exception as exc:
        require_service("Redis", f"{settings.REDIS_URL} does not answer: {exc}")
    finally:
        try:
            cache.delete(key)
        except Exception:  # noqa: S110 - cleanup of a cache that is not there
            pass

    assert value == {"n": 1}


def test_tasks_go_to_a_broker_when_one_is_configured():
    if not settings.CELERY_BROKER_URL:
        require_service("Celery broker", "CELERY_BROKER_URL is not set")

    assert settings.CELERY_TASK_ALWAYS_EAGER is False
