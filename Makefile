# The front door: `make dev` and `make test` work on a fresh machine (they create the virtualenv first).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: dev test install lint typecheck unit bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q src  # an editable install leaves chatgate uncompiled
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed node_modules/.installed

## make dev: the whole gateway on this machine on embedded defaults (AWS emulation, Azure emulator).
dev: $(BIN)/.installed
	$(BIN)/chatgate dev

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/.installed
	$(BIN)/mypy

## make test: install everything, then lint, type checks, the template checks and every test.
test: install lint typecheck infra-check
	$(BIN)/pytest

clean:
	rm -rf $(VENV) node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache

include mk/infra.mk
