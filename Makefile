# The two commands the README starts with: `make dev` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install dev test lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

dev: install
	$(BIN)/journeys dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collects no test: make stops on any non-zero exit, so CI fails then too.
test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.history_size
