# promo-stream tasks. `make help` lists them; CI runs `make test` (.ci/run), the README the rest.
# Local servers run as plain processes (deploy/local/servers.sh), state and logs in .run/.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVERS := deploy/local/servers.sh

# The local profile (Tansu quirks, local addresses) for every task here. It wins over the
# caller's environment so `make test` never reaches a production broker by accident; a
# command-line `make VAR=value` still overrides it.
include deploy/local/promo.env
export $(shell sed -n 's/^\([A-Z][A-Z0-9_]*\)=.*/\1/p' deploy/local/promo.env)

.PHONY: help venv install up down demo test test-unit test-current-clickhouse lint typecheck bench chaos clean

help: ## list the targets
	@echo "usage: make TARGET"
	@awk -F ':.*## ' '/^[a-z -]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' Makefile

venv install: $(STAMP) ## create .venv and install the package with its dev tools

# Re-installs only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

up: install ## start Tansu and ClickHouse (idempotent, installs ClickHouse and Chromium if missing), apply the ClickHouse DDL
	$(SERVERS) up
	$(BIN)/promo migrate

down: ## stop the demo workers and both servers (ClickHouse data stays in .run/)
	$(SERVERS) down

demo: up ## run the whole flow: 2 workers, 3 simulated days, the report as text and HTML (leaves all running)
	$(SERVERS) workers-up 2
	$(BIN)/promo simulate --users 3000 --days 3 --seed 7
	$(BIN)/promo wait-drained --timeout 180
	$(BIN)/promo rules
	$(BIN)/promo report --html .run/report.html
	@cat deploy/local/where-to-look.txt

test: up ## the whole suite against real servers: unit, agents, integration, doctests
	PROMO_REQUIRE_SERVERS=1 $(BIN)/pytest

test-unit: install ## unit and agent tests and doctests only; no servers needed
	$(BIN)/pytest tests/unit tests/agents streams schemas promo

# Production runs the current ClickHouse image; only 18.16 runs as a server here. chdb is that
# current engine in-process: a large extra (~0.8 GB), installed for this target only.
test-current-clickhouse: $(VENV)/.installed-current-clickhouse ## the DDL and report SQL on current ClickHouse (chdb, no server)
	$(BIN)/pytest tests/current_clickhouse

$(VENV)/.installed-current-clickhouse: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,current-clickhouse]'
	touch $@

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy over the packages (strict on streams and schemas)
	$(BIN)/mypy streams schemas agents promo simulator chaos benchmarks examples

# Not part of `make test`: minutes, and it loads the shared servers. Prints one JSON object;
# BENCH_ARGS=--quick for a smoke run of about a minute.
BENCH_ARGS ?=
bench: up ## every speed figure on the local servers, as one JSON object (promo bench)
	$(BIN)/promo bench $(BENCH_ARGS)

# Not part of `make test`: ~10 minutes at full size. Prints one JSON summary; fails if any
# check failed. CI runs the same scenarios small (tests/integration/test_chaos.py).
CHAOS_ARGS ?= --events 200000 --kills 5 --bad 100000
chaos: up ## chaos suite on the local servers: crashes, a bad-input flood, bad settings, a ClickHouse outage (JSON)
	$(BIN)/python -m chaos $(CHAOS_ARGS) --json

clean: ## stop everything, remove .run/ and tool caches (keeps .venv)
	$(SERVERS) clean
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
