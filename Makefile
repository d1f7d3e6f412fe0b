# The README's commands. Everything installs into .venv at the repository root.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Exact versions and hashes of everything setup installs (the test extras, pip and the build
# backend too); pyproject.toml keeps the ranges. `make lock` writes it.
LOCK := requirements.lock

.PHONY: setup demo test test-faults test-fast lint bench ui serve clean lock

# The lock's pip goes in first (a fresh venv's own pip takes about twice as long over the
# rest). The package itself goes in without dependencies and without an isolated build (its
# build backend is in the lock), so nothing unhashed is downloaded; pip check then catches a
# lock older than pyproject.toml's dependencies.
$(STAMP): pyproject.toml $(LOCK)
	@bash scripts/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r <(awk '/^pip==/ {p = 1} p {print; if ($$0 !~ /\\$$/) exit}' $(LOCK))
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; echo "$(LOCK) does not match pyproject.toml: run make lock" >&2; exit 1; }
	@touch $(STAMP)

# Rewrites the lock from pyproject.toml (dependencies, test extras) for Python 3.11 on every
# platform, keeping the versions it has where they still fit; `make lock LOCK_FLAGS=--upgrade`
# takes the newest each range allows. uv does the resolving and is installed for this only.
LOCK_FLAGS ?=
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	printf 'pip\nsetuptools>=68\nwheel\n' | $(BIN)/uv pip compile --quiet pyproject.toml - \
		--extra test --no-strip-extras --generate-hashes --universal --python-version 3.11 \
		--custom-compile-command 'make lock' $(LOCK_FLAGS) -o $(LOCK)

# Run history of `make demo` and `make ui` stays here, for `dagster-webserver` to show.
DAGSTER_HOME ?= $(CURDIR)/.dagster_home

# bm_upgrade's instance settings (deploy/dagster.yaml: one run per cluster) unless the
# folder already has a dagster.yaml of its own; the instance's storage is created here, once,
# so the webserver and the daemon never both create it at the same moment.
setup: $(STAMP)
	@$(BIN)/python -c 'import pathlib, sys; from bm_upgrade.defs.launch import INSTANCE_YAML, prepare_instance; path = prepare_instance(pathlib.Path(sys.argv[1])); same = path.read_text() == INSTANCE_YAML; print("Dagster instance settings:", path, "" if same else "(your own, kept: compare it with deploy/dagster.yaml, whose run queue allows one run per cluster)")' '$(DAGSTER_HOME)'

lint: setup
	$(BIN)/ruff check bm_upgrade tests bench
	$(BIN)/ruff format --check bm_upgrade tests bench
	$(BIN)/mypy

# The whole suite: everything but the fault matrix's own modules, then those (test-faults).
test: setup lint
	$(BIN)/python -m pytest -q -m 'not faults' tests
	@$(MAKE) --no-print-directory test-faults

# The fault matrix's own modules (README, "Fault matrix": tests/e2e/test_faults_*.py), each
# a sandbox of its own whose rows run in file order; the rows that live beside the tests of
# the feature they break run in the rest of the suite.
test-faults: setup
	$(BIN)/python -m pytest -q -m faults tests/e2e

# The edit loop: unit tests and the Dagster definition tests, without the sandbox, servers,
# whole runs or Dagster processes (the e2e and slow markers); `make test` runs those too.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not e2e and not slow' tests/unit tests/dagster tests/test_layering.py tests/test_interfaces.py

demo: setup
	@mkdir -p $(DAGSTER_HOME)
	DAGSTER_HOME=$(DAGSTER_HOME) $(BIN)/bm-upgrade demo

# Every benchmark, then one table of the performance goals and their figures in
# bench/results/latest.json (BENCH_FLAGS: --json FILE, --quick, --only NAME...; bench/README.md).
BENCH_FLAGS ?=
bench: setup
	$(BIN)/python bench/run_all.py $(BENCH_FLAGS)

# Webserver + daemon on 127.0.0.1 for the demo sandbox (started unless it runs); prints the
# URL; Ctrl-C stops both. UI_PORT=3001 make ui for another port.
UI_PORT ?= 3000
ui: setup
	@DAGSTER_HOME='$(DAGSTER_HOME)' BIN='$(BIN)' UI_PORT='$(UI_PORT)' bash deploy/ui.sh

# The production shape on this machine (deploy/serve.sh): PostgreSQL storage (the URL from
# BM_UPGRADE_PG_URL, or a local server of its own for a rehearsal), the code location in its
# own gRPC code server, dagster-daemon and dagster-webserver; Ctrl-C stops all, by PID.
# Its instance folder is SERVE_HOME, not the SQLite one of `make ui`.
SERVE_HOME ?= $(CURDIR)/.dagster_serve
serve: setup
	@DAGSTER_HOME='$(SERVE_HOME)' BIN='$(BIN)' UI_PORT='$(UI_PORT)' bash deploy/serve.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
