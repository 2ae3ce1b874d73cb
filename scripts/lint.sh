#!/usr/bin/env bash
# `make lint`: ruff (lint and format) and mypy (with django-stubs and djangorestframework-stubs,
# configured in pyproject.toml) on every app.
# Runs all three and fails if any failed, so one run shows every problem.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${VENV:-.venv}/bin
status=0

echo "== ruff check"
"$BIN/ruff" check . || status=1
echo "== ruff format --check"
"$BIN/ruff" format --check . || status=1

apps=(marketerapi governance audiences integrations campaigns sandbox portal)
echo "== mypy ${apps[*]}"
"$BIN/mypy" "${apps[@]}" || status=1

exit $status
