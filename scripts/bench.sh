#!/usr/bin/env bash
# `make bench`: make sure the load generator is there, then run bench/run.py, which
# writes bench/results.md. wrk (Debian package) is installed when missing and we are
# root; otherwise the benchmarks fall back to a bounded Python keep-alive client.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing wrk (load generator)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } \
            || echo "could not install wrk; using the Python client"
    else
        echo "wrk not found (apt-get install wrk); using the Python client"
    fi
fi

exec "${VENV:-.venv}/bin/python" bench/run.py "$@"
