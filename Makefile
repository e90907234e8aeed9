# The two commands the README starts with: `make dev` and `make test`. CI runs `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install dev test test-fast lint bench browser-deps screenshot

# Created once; `install` then keeps it in step with pyproject.toml.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

dev: install
	$(BIN)/journeys dev

# Make stops at the first non-zero exit, so a lint error fails the target, and so does pytest's
# exit code 5 when it collects no test at all.
test: install
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || $(MAKE) browser-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

# The same without the tests marked slow (chaos, outages, the 1,000-contact split, the dev
# command, the namespace install): under a minute, for the edit-and-check loop. `make test` is
# the one that counts.
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Short runs of every benchmark; docs/benchmarks.md gives the full-size commands.
bench: install
	$(BIN)/python -m bench.history_size
	$(BIN)/python -m bench.ingest --quick
	$(BIN)/python -m bench.throughput --quick
	$(BIN)/python -m bench.scale --quick
	$(BIN)/python -m bench.ui --quick
	$(BIN)/python -m bench.scale_out --quick
	$(BIN)/python -m bench.retention_months --quick

# Headless Chromium and its driver, Debian's: the operator page's browser tests (tests/ui/) need
# them, so `make test` installs them when missing; docs/screenshot.py uses Chromium too.
browser-deps:
	apt-get update
	apt-get install -y chromium chromium-driver

screenshot: install
	command -v chromium >/dev/null || $(MAKE) browser-deps
	$(BIN)/python docs/screenshot.py
