# marketerapi — the entry points. Anything longer than a line of shell lives in scripts/.
#
#   make run      serve http://127.0.0.1:8000 with a sandbox and demo users (needs only Python 3.11+)
#   make test     the test suite (SQLite by default; honours DATABASE_URL, REDIS_URL,
#                 CELERY_BROKER_URL and REQUIRE_SERVICES from the environment)
#   make lint     ruff check, ruff format --check, mypy (django-stubs) on every app
#   make bench    benchmarks → bench/results.md
#   make reliability  crash, outage, load and fuzz drills on real processes → docs/reliability.md
#   make token    print a new API token (default: demo-developer in sandbox), with make run's settings
#   make migrate  apply migrations
#   make clean    remove caches and build output (keeps .venv and db.sqlite3; see distclean)

SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: help install run test lint bench reliability token migrate clean distclean

# `make token WHO=demo-analyst ENVIRONMENT=pilot`: whose token, in which environment.
WHO ?= demo-developer
ENVIRONMENT ?= sandbox

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

install: ## create .venv (Python 3.11+) and install requirements-dev.txt when it changed
	@scripts/bootstrap.sh

run: install ## migrate, load the sandbox, seed demo users, serve http://127.0.0.1:8000 (+ Celery with CELERY_BROKER_URL)
	@scripts/run.sh

test: install ## run pytest; ARGS="-k settings" passes options through
	$(PY) -m pytest $(ARGS)

lint: install ## ruff check, ruff format --check, mypy (django-stubs) on every app
	@scripts/lint.sh

bench: install ## run bench/bench_*.py on PostgreSQL (BENCH_DATABASE_URL) → bench/results.md; ARGS=bench_api_read for one
	@scripts/bench.sh $(ARGS)

reliability: install ## drills on PostgreSQL, Redis, gunicorn, Celery → docs/reliability.md; RELIABILITY_BOUNDED=1 for CI's
	@scripts/reliability.sh

token: install ## print a new API token for WHO (demo-developer) in ENVIRONMENT (sandbox), with make run's settings
	@DEBUG=$${DEBUG:-1} $(PY) manage.py issue_token $(WHO) --environment $(ENVIRONMENT)

migrate: install ## apply migrations (DEBUG=1 unless set, like make run)
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --noinput

clean: ## remove caches, collected static files and var/ (keeps .venv and db.sqlite3)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis staticfiles var bench/.data

distclean: clean ## clean, and remove .venv and the development database db.sqlite3
	rm -rf $(VENV) db.sqlite3
