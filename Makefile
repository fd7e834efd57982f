# deptmesh: `make demo` and `make test` set up everything they need (a virtual
# environment, the Python packages, buf from npm) and are safe to run again.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF := node_modules/.bin/buf
PUBLISHED := protos/published.binpb

.PHONY: help setup consul postgresql prometheus demo test lint typecheck imports unit protos check-protos publish-protos clean

help:
	@echo "make demo            start the three services and drive a claim to PAID"
	@echo "make test            lint, type-check, check layers, check the contracts, run every test"
	@echo "make protos          regenerate the stubs under protos/"
	@echo "make check-protos    buf lint + format + stale stubs + breaking changes"
	@echo "make publish-protos  record the current contracts as published"

setup: $(BIN)/.installed $(BUF) consul postgresql prometheus

# A consul on PATH (>= 1.8), or Debian's package unpacked into .tools/.
consul:
	@scripts/install-consul >/dev/null

# PostgreSQL's server programs (>= 13) for the tests' throwaway servers: the
# machine's own, or Debian's package unpacked into .tools/.
postgresql:
	@scripts/install-postgresql >/dev/null

# Prometheus, promtool and Alertmanager for the monitoring tests and `deptmesh dev
# up`: the machine's own, or Debian's packages unpacked into .tools/.
prometheus:
	@scripts/install-prometheus >/dev/null

# The stamp is rebuilt whenever pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "deptmesh needs Python 3.11 or newer")'
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(BIN)/python -m deptmesh.services.demo

test: lint typecheck imports check-protos unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

# The layers (services -> sidecar -> registry), no cycles, private modules kept private.
imports: setup
	$(BIN)/lint-imports --no-cache

# In random order (pytest-randomly prints its seed): `make unit PYTEST_ARGS=--randomly-seed=N`
# replays one order, `make unit PYTEST_ARGS="-p no:randomly"` runs them in file order.
unit: setup
	$(BIN)/pytest $(PYTEST_ARGS)

protos: setup
	scripts/generate-protos

# Lint, format, stubs against the sources, breaking changes; each failure says
# what to do, and the last line says what passed (scripts/check-protos).
check-protos: setup
	@BUF=$(BUF) PUBLISHED=$(PUBLISHED) VENV_BIN=$(BIN) scripts/check-protos

publish-protos: setup
	$(BUF) build --exclude-source-info -o $(PUBLISHED)
	@echo "published: $(PUBLISHED) (commit it with the contract change)"

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
