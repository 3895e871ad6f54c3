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

.PHONY: up test lint down status demo install record-histories pgvector

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
# Each session is bounded as a whole (a hang that pytest-timeout cannot interrupt still ends, with both parts'
# output printed; exit 124 names it), and pytest's faulthandler prints every thread's stack of a test that runs
# longer than faulthandler_timeout (pyproject.toml), so the log says where it hung.
SUITE_TIMEOUT := timeout --kill-after=30 1500
PART_A := tests/agents tests/api tests/approvals tests/authz tests/chain tests/db tests/domain tests/llm tests/mcp tests/memory tests/swaps
test: install
	@exports="$$($(PAYGENT) stack infra --shell)"; eval "$$exports"; \
	  log_a="$$(mktemp)"; \
	  $(SUITE_TIMEOUT) $(BIN)/pytest -q $(PART_A) > "$$log_a" 2>&1 & pid_a=$$!; \
	  rc_b=0; $(SUITE_TIMEOUT) $(BIN)/pytest -q tests $(addprefix --ignore=,$(PART_A)) || rc_b=$$?; \
	  rc_a=0; wait $$pid_a || rc_a=$$?; \
	  echo "==================== part A: $(PART_A) ===================="; cat "$$log_a"; rm -f "$$log_a"; \
	  echo "make test: part A exit $$rc_a, part B exit $$rc_b"; \
	  [ $$rc_a -eq 0 ] && [ $$rc_b -eq 0 ]

# Workflow histories for the replay test (tests/workflows/test_replay.py): the tests below walk every workflow's
# main paths; with PAYGENT_RECORD_HISTORIES set, each writes the histories of the workflows it ran (see
# tests/history_recorder.py) to tests/workflows/histories/<label>/. Record when a workflow's commands change, with
# the code that is about to be replaced checked out (docs/ARCHITECTURE.md, "Changing workflow code").
HISTORIES_LABEL ?= $(shell git rev-parse --short=7 HEAD)
RECORD_TESTS := \
  tests/api/test_payments.py::test_payment_settles_on_chain \
  tests/api/test_payments.py::test_transfer_that_reverts_ends_failed_with_reason \
  tests/api/test_wallets_and_limits.py::test_cap_and_denylist_refuse_with_the_limit_named \
  tests/api/test_local_steps.py \
  tests/api/test_payment_cancel.py::test_cancel_while_awaiting_approval_releases_the_reservation \
  tests/api/test_temporal_cancel.py \
  tests/approvals/test_approval_flow.py::test_api_and_cli_approvals_then_the_time_lock_then_the_chain \
  tests/approvals/test_approval_flow.py::test_cancel_during_the_time_lock_stops_the_payment_and_releases_the_reservation \
  tests/approvals/test_approval_refusals.py::test_an_edit_clears_approvals_and_makes_the_old_hash_stale \
  tests/approvals/test_approval_refusals.py::test_no_decision_before_the_timeout_expires_it_and_releases_the_reservation \
  tests/x402/test_payments_api.py::test_paid_fetch_settles_once_and_is_recorded \
  tests/x402/test_payments_api.py::test_server_asking_more_than_the_cap_is_refused_and_nothing_moves \
  tests/x402/test_payments_api.py::test_a_url_that_asks_no_payment_ends_cancelled_and_nothing_moves \
  tests/reconcile/test_receipt_timeout.py \
  tests/follower/test_chain_workflow.py \
  tests/reconcile/test_late_settlement.py::test_402_then_settled_is_confirmed_late \
  tests/reconcile/test_mismatch.py::test_reconcile_run_carries_a_search_attribute \
  tests/agents/test_offline_runs.py::test_keyless_run_pays_on_chain_and_answers_with_the_tx_hash \
  tests/agents/test_offline_runs.py::test_memory_persists_across_runs_of_a_thread \
  tests/agents/test_offline_runs.py::test_x402_fetch_pays_the_asked_price_once_and_returns_the_body \
  tests/agents/test_approvals.py \
  tests/agents/test_cancel.py::test_cancel_during_a_slow_llm_step_cancels_it_and_ends_the_run_cancelled \
  tests/workflows/test_approval_workflow.py::test_two_of_three_then_timelock_then_approved \
  tests/workflows/test_approval_workflow.py::test_one_rejection_ends_it_and_later_approvals_are_refused_with_the_reason \
  tests/workflows/test_approval_timeouts.py \
  tests/workflows/test_approval_edit_delegate.py::test_revoke_own_approval_until_the_threshold_is_met \
  tests/workflows/test_approval_edit_delegate.py::test_delegate_counts_once_for_the_delegator_and_not_after_it_ends \
  tests/workflows/test_approval_signals_notify.py::test_cli_signal_counts_like_an_update_and_refused_signals_are_audited
record-histories: install
	@exports="$$($(PAYGENT) stack infra --shell)"; eval "$$exports"; \
	  out=tests/workflows/histories/$(HISTORIES_LABEL); rm -rf "$$out"; \
	  PAYGENT_RECORD_HISTORIES="$$out" $(BIN)/pytest -q $(RECORD_TESTS); \
	  echo "record-histories: $$(ls "$$out" | wc -l) histories in $$out ($$(du -sh "$$out" | cut -f1))"; \
	  ls "$$out" | cut -d- -f1 | sort | uniq -c

# Format, lint, type-check and check the layers (ruff, mypy and import-linter, configured in pyproject.toml): fails
# on any finding; `ruff format .` fixes the format. mypy checks the packages (not tests/benchmarks), cached in
# .mypy_cache/; lint-imports checks the import contracts of docs/ARCHITECTURE.md.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: install
	$(PAYGENT) demo

status: install
	$(PAYGENT) stack status

down:
	@if [ -x $(PAYGENT) ]; then $(PAYGENT) stack down; else echo "nothing installed, nothing to stop"; fi

# pgvector from the vendored source, for a Postgres whose Debian archive has no postgresql-<major>-pgvector
# (needs root and postgresql-server-dev-<major>; see third_party/pgvector/README.md). Then `paygent stack up`
# creates the extension and the HNSW index.
pgvector:
	$(MAKE) -C third_party/pgvector OPTFLAGS=""
	$(MAKE) -C third_party/pgvector install
	$(MAKE) -C third_party/pgvector clean
