# The README's commands. Everything installs into .venv at the repository root.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench ui clean

$(STAMP): pyproject.toml
	@bash scripts/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check bm_upgrade tests bench
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest -q tests

# Run history of `make demo` stays here, for `dagster-webserver` / `make ui` to show.
DAGSTER_HOME ?= $(CURDIR)/.dagster_home

demo: setup
	@mkdir -p $(DAGSTER_HOME)
	DAGSTER_HOME=$(DAGSTER_HOME) $(BIN)/bm-upgrade demo

bench: setup
	$(BIN)/python bench/bench_sandbox.py
	$(BIN)/python bench/bench_upload.py --size-mb 128 --repeat 2
	$(BIN)/python bench/bench_upgrade.py

ui: setup
	@echo "make ui needs the upgrade job and the daemon set-up (issues 6, 7), not landed yet." >&2; exit 1

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
