# The two commands the README starts with: `make dev` and `make test`. CI runs `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install dev test lint bench

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
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Short runs of every benchmark; docs/benchmarks.md gives the full-size commands.
bench: install
	$(BIN)/python -m bench.history_size
	$(BIN)/python -m bench.throughput --quick
	$(BIN)/python -m bench.scale --quick
