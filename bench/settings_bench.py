"""Settings of the benchmark server: production-like (DEBUG off, persistent connections,
PostgreSQL), plus the bare baseline view of bench/urls.py next to the real URLs."""

import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "b" * 40)
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/marketerapi_bench")

from marketerapi.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# No collectstatic for the bench server; the API serves no static files.
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
