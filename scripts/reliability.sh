#!/usr/bin/env bash
# `make reliability`: crash, outage, load and fuzz drills against PostgreSQL, Redis, gunicorn
# (4 workers), a Celery worker and beat — all the drills' own processes (a PostgreSQL cluster
# `rel` on port 5442, a redis-server on 6390); the machine's shared services are never
# stopped. Writes docs/reliability.md. RELIABILITY_BOUNDED=1: each drill once, small (CI).
#
#   make reliability                                   # the full run (minutes)
#   RELIABILITY_BOUNDED=1 make reliability             # the bounded run CI does (< 4 minutes)
#   RELIABILITY_SCENARIOS=c,e make reliability         # some drills only
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
PY=${VENV:-.venv}/bin/python

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -qq "$@" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$@" >/dev/null; }
    else
        echo "missing: $* (apt-get install $*)" >&2
        return 1
    fi
}
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
command -v pg_createcluster >/dev/null 2>&1 || apt_install postgresql-common postgresql

# schemathesis lives in a virtualenv of its own (its pins must not move the app's).
FUZZ_VENV=${RELIABILITY_FUZZ_VENV:-/work/fuzzvenv}
if [ ! -x "$FUZZ_VENV/bin/schemathesis" ]; then
    echo "== installing schemathesis into $FUZZ_VENV"
    python3 -m venv "$FUZZ_VENV" && "$FUZZ_VENV/bin/pip" install -q schemathesis \
        || echo "could not install schemathesis; the fuzz drill will fail and say so" >&2
fi
export RELIABILITY_FUZZ_VENV=$FUZZ_VENV

exec "$PY" -m reliability "$@"
