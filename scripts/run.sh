#!/usr/bin/env bash
# `make run`: a development server on a machine with nothing but Python.
#
# Migrates, loads a 20,000-profile sandbox when it is empty, (re)creates the demo
# users and serves http://127.0.0.1:8000 with DEBUG=1. Without CELERY_BROKER_URL,
# jobs run in-process; with it, a Celery worker and beat start beside the server and
# stop with it.
#
#   ADDR=0.0.0.0:8000 make run         # listen elsewhere
#   CELERY_BROKER_URL=redis://127.0.0.1:6379/1 REDIS_URL=redis://127.0.0.1:6379/0 make run
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${VENV:-.venv}/bin/python
ADDR=${ADDR:-127.0.0.1:8000}
export DEBUG=${DEBUG:-1}
# Links the app prints (a token's curl line, emails) point at the address it serves.
export SITE_URL=${SITE_URL:-http://${ADDR/0.0.0.0/127.0.0.1}}
export PYTHONUNBUFFERED=1

manage() { "$PY" manage.py "$@"; }

echo "== migrate"
manage migrate --noinput
echo "== sandbox (20,000 synthetic profiles, seed 42; kept when already loaded)"
manage sandbox_reset --environment sandbox --profiles 20000 --seed 42 --if-empty
echo "== demo users"
manage seed_demo

pids=()
stop_workers() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
trap stop_workers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${CELERY_BROKER_URL:-}" ]; then
    mkdir -p var
    echo "== celery worker and beat on ${CELERY_BROKER_URL}"
    "$PY" -m celery -A marketerapi worker --loglevel INFO --concurrency 2 --hostname "worker@%h" &
    pids+=($!)
    "$PY" -m celery -A marketerapi beat --loglevel INFO --schedule var/celerybeat-schedule &
    pids+=($!)
else
    echo "== no CELERY_BROKER_URL: jobs run in-process (set it to start a worker and beat)"
fi

echo "== serving http://${ADDR}/  (portal /login/, admin /admin/, API docs /api/docs/; Ctrl-C stops)"
manage runserver "$ADDR"
