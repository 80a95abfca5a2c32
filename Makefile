# The front door: `make dev` and `make test` work on a fresh machine (they create the virtualenv first).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: dev test install lint typecheck unit bench clean console-vendor browser

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

## make console-vendor: copy the chart library the lock file pins into the console (committed; a test
## checks it is byte for byte node_modules' copy, so a `npm install uplot@...` shows up as a failing test).
UPLOT_VERSION = $(shell node -p 'require("./package-lock.json").packages["node_modules/uplot"].version')
console-vendor: node_modules/.installed
	rm -f src/chatgate/console/static/vendor/uplot-*
	cp node_modules/uplot/dist/uPlot.iife.min.js src/chatgate/console/static/vendor/uplot-$(UPLOT_VERSION).iife.min.js
	cp node_modules/uplot/dist/uPlot.min.css src/chatgate/console/static/vendor/uplot-$(UPLOT_VERSION).min.css
	cp node_modules/uplot/LICENSE src/chatgate/console/static/vendor/uplot-LICENSE
	sed -i -E 's/uplot-[0-9]+\.[0-9]+\.[0-9]+\./uplot-$(UPLOT_VERSION)./g' src/chatgate/console/static/index.html

## make browser: the system Chromium the console's browser tests drive (Debian's package; Playwright for
## Python drives it, and never downloads a browser of its own). Quiet, and nothing to do once installed.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the console's browser tests" >&2; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }

## make dev: the whole gateway on this machine on embedded defaults (AWS emulation, Azure emulator).
dev: $(BIN)/.installed
	$(BIN)/chatgate dev

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/.installed
	$(BIN)/mypy

## make test: install everything, then lint, type checks, the template checks and every test.
test: install browser lint typecheck infra-check
	$(BIN)/pytest

clean:
	rm -rf $(VENV) node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache

include mk/infra.mk
