#!/usr/bin/env bash
# `make lint`: ruff (lint and format) on everything, mypy on the typed core:
# every app's services.py, selectors.py and tasks.py (STYLE.md, "Typing").
# Runs all three and fails if any failed, so one run shows every problem.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${VENV:-.venv}/bin
status=0

echo "== ruff check"
"$BIN/ruff" check . || status=1
echo "== ruff format --check"
"$BIN/ruff" format --check . || status=1

shopt -s nullglob
typed=(*/services.py */selectors.py */tasks.py)
echo "== mypy ${typed[*]}"
if [ ${#typed[@]} -gt 0 ]; then
    # Config comes from [tool.mypy] in pyproject.toml; each file is named by its package
    # (every app has an __init__.py), so `governance/services.py` is governance.services.
    # typings/ teaches mypy that Django's TextChoices members are str (see typings/README.md).
    MYPYPATH=typings${MYPYPATH:+:$MYPYPATH} "$BIN/mypy" "${typed[@]}" || status=1
fi

exit $status
