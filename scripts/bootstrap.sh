#!/usr/bin/env bash
# Make .venv ready: create it with Python >= 3.11 when missing, and install
# requirements-dev.txt whenever it, requirements.txt or the interpreter changed.
# A stamp file in the venv holds the hash of what was installed last.
#
#   scripts/bootstrap.sh            # what every make target runs first
#   PYTHON=/opt/py311/bin/python3 scripts/bootstrap.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
STAMP="$VENV/.requirements.sha256"

is_new_enough() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.11 python3.12 python3.13 python3.14 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && is_new_enough "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if [ -x "$VENV/bin/python" ] && ! is_new_enough "$VENV/bin/python"; then
    echo "error: $VENV uses $("$VENV/bin/python" --version 2>&1); marketerapi needs Python 3.11 or newer." >&2
    echo "       Remove it (make distclean) and run make again." >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! python=$(find_python); then
        found=$(python3 --version 2>&1 || echo "no python3")
        echo "error: marketerapi needs Python 3.11 or newer, and none was found on PATH (python3: $found)." >&2
        echo "       Install it (Debian/Ubuntu: apt-get install python3.11 python3.11-venv)," >&2
        echo "       or point to one: PYTHON=/path/to/python3.11 make run" >&2
        exit 1
    fi
    echo "Creating $VENV with $python ($("$python" --version 2>&1))"
    if ! "$python" -m venv "$VENV"; then
        rm -rf "$VENV"
        echo "error: could not create $VENV; on Debian/Ubuntu install python3-venv (or python3.11-venv)." >&2
        exit 1
    fi
fi

wanted=$( { cat requirements.txt requirements-dev.txt; "$VENV/bin/python" --version 2>&1; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$wanted" ]; then
    echo "Installing requirements-dev.txt into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt
    echo "$wanted" >"$STAMP"
fi
