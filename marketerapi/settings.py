"""marketerapi settings, read from environment variables (see .env.example).

Defaults give a server that needs nothing but Python: SQLite, an in-process cache and
Celery tasks that run in-process. DATABASE_URL, REDIS_URL and CELERY_BROKER_URL switch
to PostgreSQL, Redis and a real worker.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import dj_database_url

from marketerapi.env import (
    ImproperSetting,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperSetting("SECRET_KEY is empty; set it (50+ random characters) or set DEBUG=1 for development.")
    SECRET_KEY = "insecure-development-key-only-for-debug-do-not-use-in-production-0123"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# A failed CSRF check answers in the door's words (problem+json under /api/), not Django's page.
CSRF_FAILURE_VIEW = "marketerapi.problems.csrf_failure"
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    # Django's admin, for staff with the admin or developer role only (marketerapi/admin/site.py).
    "marketerapi.admin.apps.MarketerAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    # Swagger UI and Redoc served from this deployment, so /api/docs/ works offline.
    "drf_spectacular_sidecar",
    "guardian",
    "simple_history",
    "waffle",
    "django_htmx",
    # Request, response and database metrics for /metrics (integrations/prometheus.py adds ours).
    "django_prometheus",
    # The door plumbing every app shares: admin site and dashboard, their templates and tags.
    "marketerapi",
    "governance",
    "audiences",
    "integrations",
    "campaigns",
    "sandbox",
    "portal",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "marketerapi.middleware.RequestIdMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "marketerapi.middleware.ContentSecurityPolicyMiddleware",
    # One row per request for the request log, queued in process (governance/requestlog/).
    "marketerapi.middleware.RequestLogMiddleware",
    # A NUL character in a path, query or form is a 400, not a database error.
    "marketerapi.middleware.NulRefusalMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # RateLimit headers on every /api/ response, and counting what DRF refused first.
    "governance.limits.throttling.RateLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Redis or PostgreSQL not answering while a view runs: a 503 in the door's words, not a 500.
    "marketerapi.middleware.ServiceOutageMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "waffle.middleware.WaffleMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "marketerapi.urls"
WSGI_APPLICATION = "marketerapi.wsgi.application"
ASGI_APPLICATION = "marketerapi.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    },
]

# The template of the error pages people see in a browser (marketerapi.problems.error_page):
# the portal's layout, named here so that the core never imports the portal.
ERROR_PAGE_TEMPLATE = "portal/error.html"

# --- database -------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
    schemes=("sqlite", "postgres", "postgresql", "pgsql"),
)
# Persistent connections: a new connection per request costs about 10x on a small
# read (measured in bench/), so keep them open and health-check them on reuse.
CONN_MAX_AGE = env_int("CONN_MAX_AGE", 600, minimum=0)
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=CONN_MAX_AGE, conn_health_checks=True),
}
# A read replica for previews and exports (marketerapi/dbrouter.py); writes, and every other
# read, stay on DATABASE_URL.
DATABASE_REPLICA_URL = env_url("DATABASE_REPLICA_URL", "", schemes=("sqlite", "postgres", "postgresql", "pgsql"))
REPLICA_DATABASE: str | None = None
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(
        DATABASE_REPLICA_URL, conn_max_age=CONN_MAX_AGE, conn_health_checks=True
    )
    REPLICA_DATABASE = "replica"
DATABASE_ROUTERS = ["marketerapi.dbrouter.ReplicaRouter"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serializes writers; wait rather than fail when the worker thread writes.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache, Redis, Celery -------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "", schemes=("redis", "rediss", "unix"))
# Seconds: a Redis that does not answer (down, or a network that drops packets) is an
# outage within seconds — a 503 with Retry-After, and GET /status saying so — rather than
# requests hanging for the system's TCP timeout.
REDIS_CACHE_OPTIONS: dict[str, Any] = {
    "CLIENT_CLASS": "django_redis.client.DefaultClient",
    "SOCKET_CONNECT_TIMEOUT": 1.0,
    "SOCKET_TIMEOUT": 2.0,
}
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": dict(REDIS_CACHE_OPTIONS),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Rate limits live in REDIS_URL under this prefix (two deployments may share a Redis).
RATELIMIT_KEY_PREFIX = env_str("RATELIMIT_KEY_PREFIX", "mk:rl")

CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", "", schemes=("redis", "rediss", "amqp", "memory"))
CELERY_RESULT_BACKEND = env_url(
    "CELERY_RESULT_BACKEND", REDIS_URL or CELERY_BROKER_URL, schemes=("redis", "rediss", "rpc", "cache")
)
# Without a broker, jobs run in-process as soon as their transaction commits.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# How often a worker writes its heartbeat (/status; a job whose worker stopped beating is
# taken over by the recovery sweeps).
WORKER_HEARTBEAT_SECONDS = 15.0
# Without PostgreSQL's advisory locks (SQLite), a running publish job whose heartbeat is
# older than this is taken for dead and taken over (on PostgreSQL the job's lock decides).
PUBLISH_STALE_SECONDS = env_int("PUBLISH_STALE_SECONDS", 60, minimum=5)


def _every(task: str, seconds: float) -> dict[str, Any]:
    # `expires`: a tick that waited in the queue longer than its interval is dropped; the
    # next one does the same work.
    return {"task": task, "schedule": seconds, "options": {"expires": seconds}}


# Periodic work for `celery beat`: every app's sweeps in one table, by task name. A kick
# after commit does the work at once; a sweep picks up what a lost kick or a crash left.
CELERY_BEAT_SCHEDULE = {
    # Approvals: run approved requests whose change window opened (or whose kick was lost);
    # expire requests left undecided for 72 hours.
    "governance.approvals_run_due": _every("governance.approvals_run_due", 60.0),
    "governance.approvals_expire": _every("governance.approvals_expire", 300.0),
    # Idempotency records are replayable for 24 hours; delete the older ones hourly.
    "governance.idempotency_purge": _every("governance.idempotency_purge", 3600.0),
    # The outbox relay and webhook deliveries (their backoff is kept in the database).
    "integrations.relay_outbox sweep": _every("integrations.relay_outbox", 10.0),
    "integrations.deliver_webhooks sweep": _every("integrations.deliver_webhooks", 5.0),
    # Deferred destination pushes carry their own next attempt; a tick usually finds little.
    "integrations.retry_deferred_pushes sweep": _every("integrations.retry_deferred_pushes", 30.0),
    "integrations.worker_heartbeat": _every("integrations.worker_heartbeat", WORKER_HEARTBEAT_SECONDS),
    # Heavy jobs waiting for a job slot whose kick was lost (integrations/jobs/slots.py).
    "integrations.job_slots_dispatch sweep": _every("integrations.job_slots_dispatch", 30.0),
    # Publish jobs whose worker died (its job lock released, or a stale heartbeat) or whose
    # kick was lost: within a minute of a SIGKILL (workers also sweep as they start).
    "audiences.publish_recover sweep": _every("audiences.publish_recover", 30.0),
    # Exports: delete files past their expiry; pick up exports whose worker died.
    "audiences.exports_sweep": _every("audiences.exports_sweep", 60.0),
    # Scheduled campaigns whose time has come; send jobs whose worker died (stale heartbeat).
    "campaigns.start_due sweep": _every("campaigns.start_due", 30.0),
    "campaigns.send_recover sweep": _every("campaigns.send_recover", 60.0),
    # The request log past REQUEST_LOG_RETENTION_DAYS.
    "governance.request_log_prune": _every("governance.request_log_prune", 3600.0),
}

# The request log (governance/requestlog/): each API request and portal page, queued in
# process and written in one INSERT per REQUEST_LOG_BATCH rows or REQUEST_LOG_FLUSH_SECONDS,
# kept REQUEST_LOG_RETENTION_DAYS and pruned hourly by beat.
REQUEST_LOG_ENABLED = env_bool("REQUEST_LOG_ENABLED", True)
REQUEST_LOG_RETENTION_DAYS = env_int("REQUEST_LOG_RETENTION_DAYS", 90, minimum=1)
REQUEST_LOG_BATCH = env_int("REQUEST_LOG_BATCH", 200, minimum=1)
REQUEST_LOG_FLUSH_SECONDS = env_float("REQUEST_LOG_FLUSH_SECONDS", 2.0, minimum=0.1)
REQUEST_LOG_BACKGROUND = True
REQUEST_LOG_SINK = "governance.requestlog.buffer.add"

# Prometheus /metrics (integrations/prometheus.py): refused to everyone unless the caller's
# address is in METRICS_ALLOWED_NETWORKS (CIDRs) or it sends Authorization: Bearer METRICS_TOKEN.
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", [])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperSetting(
            f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a network; use CIDRs such as 10.0.0.0/8."
        ) from None
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# Job slots (integrations/jobs/slots.py): how many heavy jobs — publishes, campaign sends,
# exports — run at once per environment, by environment slug ("*" for the others). Past it
# a job waits as `queued` with its queue position and starts by itself when a slot frees;
# a job whose heartbeat is older than JOB_SLOT_STALE_SECONDS (a killed worker) holds none.
JOB_SLOTS = {"sandbox": env_int("JOB_SLOTS_SANDBOX", 2, minimum=1), "*": env_int("JOB_SLOTS", 4, minimum=1)}
JOB_SLOT_STALE_SECONDS = env_int("JOB_SLOT_STALE_SECONDS", 120, minimum=10)

# Campaign sends (campaigns/sending/runner.py): a batch a vendor refuses with 5xx, timeouts,
# an open breaker or a rate limit is tried this many more times within the job, waiting
# CAMPAIGN_SEND_BACKOFF · 2^n seconds; after that the rest is deferred to the review queue.
CAMPAIGN_SEND_RETRIES = env_int("CAMPAIGN_SEND_RETRIES", 3, minimum=0, maximum=20)
CAMPAIGN_SEND_BACKOFF = env_float("CAMPAIGN_SEND_BACKOFF", 5.0, minimum=0.0, maximum=600.0)

# When set, tests that need PostgreSQL, Redis or a broker fail instead of skipping.
REQUIRE_SERVICES = env_bool("REQUIRE_SERVICES", False)

# --- auth -----------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
# Sign-in throttle (portal and admin site; governance/limits/signin.py): this many wrong
# passwords for one account, or from one address, lock it out for this many seconds.
SIGNIN_MAX_FAILURES = env_int("SIGNIN_MAX_FAILURES", 5, minimum=1)
SIGNIN_LOCKOUT_SECONDS = env_int("SIGNIN_LOCKOUT_SECONDS", 900, minimum=1)
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous object permissions
GUARDIAN_RAISE_403 = False

# --- i18n, static ---------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES: dict[str, Any] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- exports (audiences/exports/, docs/exports.md) -------------------------------------
# Where export files are written: a local directory by default, or an S3-compatible bucket
# (django-storages; install boto3 beside it) when EXPORTS_S3_BUCKET is set.
EXPORTS_ROOT = env_str("EXPORTS_ROOT", str(BASE_DIR / "var" / "exports"))
EXPORTS_S3_BUCKET = env_str("EXPORTS_S3_BUCKET", "")
EXPORTS_S3_ENDPOINT_URL = env_str("EXPORTS_S3_ENDPOINT_URL", "")
# Hours an export's file is kept (then a periodic task deletes it), and hours a download
# link stays valid (never beyond the file's own expiry).
EXPORTS_TTL_HOURS = env_int("EXPORTS_TTL_HOURS", 24, minimum=1)
EXPORTS_LINK_HOURS = env_int("EXPORTS_LINK_HOURS", 24, minimum=1)
if EXPORTS_S3_BUCKET:
    STORAGES["exports"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": EXPORTS_S3_BUCKET,
            "endpoint_url": EXPORTS_S3_ENDPOINT_URL or None,
            "default_acl": None,
            "file_overwrite": True,
            "location": "exports",
        },
    }
else:
    STORAGES["exports"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": EXPORTS_ROOT},
    }

# --- preview budget (audiences/definitions/budget.py, docs/limits.md) -----------
# A preview's (and validate's) statements are cancelled after this many milliseconds (PostgreSQL).
PREVIEW_STATEMENT_TIMEOUT_MS = env_int("PREVIEW_STATEMENT_TIMEOUT_MS", 10_000, minimum=100)
# Rules scoring more than this (rules_cost: a `contains` on a custom attribute 8, an event 6+) are refused.
PREVIEW_MAX_COST = env_int("PREVIEW_MAX_COST", 200, minimum=1)
# Previews running at once, per person (or token) and per environment; more wait with 429.
PREVIEW_CONCURRENCY_PER_USER = env_int("PREVIEW_CONCURRENCY_PER_USER", 2, minimum=1)
PREVIEW_CONCURRENCY_PER_ENVIRONMENT = env_int("PREVIEW_CONCURRENCY_PER_ENVIRONMENT", 6, minimum=1)

# --- request limits -------------------------------------------------------------
# A 10,000-row bulk upsert is about 4 MB of JSON; leave room, refuse far beyond it.
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 16 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
BULK_MAX_ROWS = env_int("BULK_MAX_ROWS", 10_000, minimum=1)

# --- API ------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.access.auth.BearerTokenAuthentication",
        "governance.access.auth.PortalSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["marketerapi.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "marketerapi.problems.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_PAGINATION_CLASS": "marketerapi.api.CursorPagination",
    # Rate classes per token, user or IP address, in Redis when REDIS_URL is set (governance/limits/ratelimit.py).
    "DEFAULT_THROTTLE_CLASSES": ["governance.limits.throttling.RateClassThrottle"],
    "PAGE_SIZE": 100,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "marketerapi",
    "DESCRIPTION": (
        "Governed self-service for marketing teams. Authenticate with "
        "`Authorization: Bearer mk_<environment>_…`; the token's environment scopes every "
        "object. Every error is RFC 9457 problem+json with `code`, `hint` and `request_id`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    # Errors are documented as what is sent: application/problem+json.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "marketerapi.api.problems_as_problem_json",
    ],
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for a choice set that several fields use (status and previous_status).
    "ENUM_NAME_OVERRIDES": {
        "ConsentStatusEnum": "audiences.models.ConsentStatus",
        "ApprovalStateEnum": "governance.models.ApprovalState",
    },
}

# --- production hardening (passes `manage.py check --deploy` when DEBUG is off) --
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many proxies (load balancers) stand in front of the app: the client's address is the
# entry that many from the right of X-Forwarded-For (governance/actors.py client_ip); with 0
# the header is ignored, so a client cannot write another address into the audit trail or
# rotate past the per-address rate limit.
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Error reports (the DEBUG page, error e-mails) hide passwords inside URLs too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "marketerapi.problems.SecretRedactingReporterFilter"
# Content-Security-Policy (marketerapi.middleware.ContentSecurityPolicyMiddleware). The portal,
# the admin site and /api/docs/ load every script from STATIC_URL (htmx, builder.js,
# portal.js, Swagger UI's split view) and none inline, so scripts need no 'unsafe-inline' and
# no 'unsafe-eval'. Styles keep 'unsafe-inline': progress bars are drawn with a style
# attribute and htmx adds its indicator style; a style cannot run code.
CONTENT_SECURITY_POLICY: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS", ["security.W021"] if not SECURE_HSTS_PRELOAD else [])

# --- feature flags (django-waffle) ----------------------------------------------
WAFFLE_FLAG_MODEL = "waffle.Flag"
WAFFLE_SWITCH_MODEL = "waffle.Switch"
WAFFLE_SAMPLE_MODEL = "waffle.Sample"
# An unknown flag is off, and is not created behind the admins' backs.
WAFFLE_FLAG_DEFAULT = False
WAFFLE_CREATE_MISSING_FLAGS = False

# --- product --------------------------------------------------------------------
# Demo users (seed_demo) may only be created on a development or demo deployment.
MARKETERAPI_DEMO = env_bool("MARKETERAPI_DEMO", False)
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 90, minimum=1)
DEFAULT_ENVIRONMENT = env_str("DEFAULT_ENVIRONMENT", "sandbox")
# Published audience versions whose member rows are kept (the live version always is);
# older versions keep their rules, counts and diff sizes, and a rollback to them rebuilds.
AUDIENCE_VERSIONS_WITH_MEMBERS = env_int("AUDIENCE_VERSIONS_WITH_MEMBERS", 5, minimum=1)

# --- integrations: webhooks and destinations -------------------------------------
# Webhook requests (integrations/webhooks/sending.py): seconds to connect and to wait for
# the answer, and how many requests one worker sends at once.
WEBHOOK_CONNECT_TIMEOUT = env_float("WEBHOOK_CONNECT_TIMEOUT", 3.0, minimum=0.1, maximum=60.0)
WEBHOOK_READ_TIMEOUT = env_float("WEBHOOK_READ_TIMEOUT", 10.0, minimum=0.1, maximum=300.0)
WEBHOOK_CONCURRENCY = env_int("WEBHOOK_CONCURRENCY", 8, minimum=1, maximum=64)
# Destination circuit breakers (integrations/destinations/breakers.py). Five consecutive
# server failures open one: fewer would trip on one bad minute of a healthy vendor (every
# adapter retries a failed call twice), more would keep hammering a vendor that is down.
# An open one waits 60 s before a trial call: vendors' incidents last minutes, and
# deferred work is retried from the end of the cool-down.
DESTINATION_BREAKER_THRESHOLD = env_int("DESTINATION_BREAKER_THRESHOLD", 5, minimum=1)
DESTINATION_BREAKER_COOLDOWN = env_float("DESTINATION_BREAKER_COOLDOWN", 60.0, minimum=1.0)
# Directories a sandbox file destination may write under; empty: any local directory.
DESTINATION_SANDBOX_FILE_ROOTS = env_list("DESTINATION_SANDBOX_FILE_ROOTS", [])
# Directories a file destination outside a sandbox may write under (symlinks and `..`
# resolved first); empty: file destinations are refused outside a sandbox.
DESTINATION_FILE_ROOTS = env_list("DESTINATION_FILE_ROOTS", [])
# Outbound requests (webhooks, destination adapters: integrations/egress.py) go to public
# addresses only; these networks (CIDRs, e.g. 10.20.0.0/16,127.0.0.1/32) may be reached as
# well. Cloud metadata, multicast and unspecified addresses never are.
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS", [])
for _network in OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperSetting(
            f"OUTBOUND_ALLOWED_NETWORKS: {_network!r} is not a network; use CIDRs such as 10.20.0.0/16 or fd00::/8."
        ) from None

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
# json: one JSON object per line with request_id, actor, environment and door (web, worker
# and beat alike; marketerapi/logs.py); plain: the same fields as text, for a terminal.
LOG_FORMAT = env_choice("LOG_FORMAT", "json", choices=("json", "plain"))
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "marketerapi.logs.ContextFilter"}},
    "formatters": {
        "json": {
            "()": "marketerapi.logs.RedactingJsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s "
            "%(request_id)s %(actor)s %(environment)s %(door)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {
            "()": "marketerapi.logs.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s "
            "[%(request_id)s %(door)s %(actor)s@%(environment)s] %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
# Workers and beat log through the same LOGGING (Celery would otherwise install its own format).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
if CELERY_TASK_ALWAYS_EAGER:
    # No broker: tasks run in-process, so kombu's "No hostname was supplied" and a trace line
    # per task say nothing a developer can act on. A worker (with a broker) keeps them.
    LOGGING["loggers"].update({"kombu.connection": {"level": "ERROR"}, "celery.app.trace": {"level": "WARNING"}})
