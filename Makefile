# The two commands of the README: `make run` and `make test`. Both set up what a fresh
# machine lacks (the venv with the locked dependencies, system libraries on Debian as root).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
# uv's own copy of the lock is what gets installed: never re-resolve on `make`.
UV := .venv/bin/uv
PY := .venv/bin/python
MANAGE := $(PY) manage.py

.PHONY: help run setup test lint typecheck pytest messages makemessages migrate demo bench clean

help:
	@echo "make run    set everything up and start the product (web, worker, beat, flower, mail catcher)"
	@echo "make test   set everything up and run ruff, mypy and pytest (needs PostgreSQL and Redis)"
	@echo "make bench  measure speed and memory against baselines, on PostgreSQL and Redis (BENCH_ARGS=--quick)"

.venv/.synced: pyproject.toml uv.lock scripts/bootstrap-venv
	scripts/bootstrap-venv
	$(UV) sync --frozen --quiet
	touch $@

var:
	mkdir -p var/celery/queue var/celery/processed var/media var/screenshots

messages: .venv/.synced
	@# Babel compiles the committed .po files: no system gettext needed.
	.venv/bin/pybabel compile --domain django --directory locale --statistics

makemessages: .venv/.synced
	$(MANAGE) makemessages --locale es --locale en --no-obsolete --ignore ".venv/*" --ignore "var/*" --ignore "tests/*"

migrate: .venv/.synced var
	$(MANAGE) migrate --noinput

demo: migrate
	$(MANAGE) load_demo_data

setup: .venv/.synced var
	scripts/system-deps run
	$(MAKE) --no-print-directory messages demo

run: setup
	scripts/run

lint: .venv/.synced
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: .venv/.synced
	.venv/bin/mypy .

pytest: .venv/.synced var messages
	.venv/bin/pytest $(PYTEST_ARGS)

test: .venv/.synced var messages
	scripts/system-deps test
	$(MAKE) --no-print-directory lint typecheck pytest

# Timings live here, never in tests: each figure against its baseline in the same run.
# BENCH_ARGS=--quick for a one-minute version.
bench: .venv/.synced var messages
	scripts/system-deps run
	scripts/services-up
	.venv/bin/python -m bench $(BENCH_ARGS)

clean:
	rm -rf .venv var
