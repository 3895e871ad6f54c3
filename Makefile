# Paygent, in two commands:
#   make up     install if needed, bring the local stack up (`paygent stack up`), run the demo payment
#   make test   install if needed, make sure Postgres and Redis answer, run the whole test suite (two sessions)
# and: make status, make down, make demo, make install.
#
# Installs are stamped (.venv/.installed, node_modules/.installed) and redone only when pyproject.toml or
# package-lock.json change. Ports and URLs come from the environment (see README.md, "Configuration").

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PAYGENT := $(BIN)/paygent

.PHONY: up test lint down status demo install

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# anvil comes from npm (@foundry-rs/anvil); `npm ci` installs exactly what package-lock.json pins.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

up: install
	$(PAYGENT) stack up
	$(PAYGENT) demo

# The tests start their own Temporal servers and anvil; they need Postgres and Redis, which `stack infra`
# provides (the machine's when they answer, else private ones) and exports as DATABASE_URL / REDIS_URL.
# Two pytest sessions side by side (each starts its own Temporal servers, anvil and database, so they share
# nothing but Postgres and Redis): half the wall time on two cores. Part A's output follows part B's.
PART_A := tests/agents tests/api tests/approvals tests/authz tests/chain tests/db tests/domain tests/llm
test: install
	@exports="$$($(PAYGENT) stack infra --shell)"; eval "$$exports"; \
	  log_a="$$(mktemp)"; \
	  $(BIN)/pytest -q $(PART_A) > "$$log_a" 2>&1 & pid_a=$$!; \
	  rc_b=0; $(BIN)/pytest -q tests $(addprefix --ignore=,$(PART_A)) || rc_b=$$?; \
	  rc_a=0; wait $$pid_a || rc_a=$$?; \
	  echo "==================== part A: $(PART_A) ===================="; cat "$$log_a"; rm -f "$$log_a"; \
	  echo "make test: part A exit $$rc_a, part B exit $$rc_b"; \
	  [ $$rc_a -eq 0 ] && [ $$rc_b -eq 0 ]

# Format, lint and type-check (ruff and mypy, configured in pyproject.toml): fails on any finding;
# `ruff format .` fixes the format. mypy checks the packages (not tests/benchmarks), cached in .mypy_cache/.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

demo: install
	$(PAYGENT) demo

status: install
	$(PAYGENT) stack status

down:
	@if [ -x $(PAYGENT) ]; then $(PAYGENT) stack down; else echo "nothing installed, nothing to stop"; fi
