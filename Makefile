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
# Every image ever published, numbered from 1: the API reference's changelog diffs them.
PUBLISHED_VERSIONS := protos/published

.PHONY: help setup consul postgresql prometheus chromium screenshots demo test lint typecheck imports unit protos check-protos publish-protos clean

help:
	@echo "make demo            start the three services and drive a claim to PAID"
	@echo "make test            lint, type-check, check layers, check the contracts, run every test"
	@echo "make protos          regenerate the stubs under protos/"
	@echo "make check-protos    buf lint + format + stale stubs + breaking changes"
	@echo "make publish-protos  record the current contracts as published"
	@echo "make screenshots     refresh docs/images/ from the portal's browser tests"

setup: $(BIN)/.installed $(BUF) consul postgresql prometheus chromium

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

# Chromium for the portal's browser tests (driven through Playwright's Python package;
# no browser build is downloaded): the machine's own, or Debian's package as root.
chromium:
	@scripts/install-chromium >/dev/null

# The README's picture of the call graph, taken by the portal's browser test.
screenshots: setup
	DEPTMESH_REFRESH_SCREENSHOTS=1 $(BIN)/pytest tests/portal/test_pages.py -k readme_screenshot -q

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
	@last=$$(ls $(PUBLISHED_VERSIONS) | sed -n 's/^\([0-9]*\)\.binpb$$/\1/p' | sort -n | tail -1); \
	if [ -n "$$last" ] && cmp -s $(PUBLISHED) $(PUBLISHED_VERSIONS)/$$last.binpb; then \
	  echo "published: $(PUBLISHED), unchanged since version $$last"; \
	else \
	  cp $(PUBLISHED) $(PUBLISHED_VERSIONS)/$$(( $${last:-0} + 1 )).binpb; \
	  echo "published: $(PUBLISHED) and $(PUBLISHED_VERSIONS)/$$(( $${last:-0} + 1 )).binpb (commit them with the contract change)"; \
	fi

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
