# payledger developer commands. A fresh machine needs only Python 3.11+, pip, venv and make:
# every target that runs project code first creates (or reuses) .venv and installs exactly what
# uv.lock pins, failing if uv.lock no longer matches pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
UV := $(BIN)/uv
# One stamp per uv version, so changing UV_VERSION reinstalls uv.
UV_STAMP := $(VENV)/.uv-$(UV_VERSION)
# Rebuilt whenever pyproject.toml or uv.lock changes; otherwise every target starts at once.
INSTALLED := $(VENV)/.installed
# pytest-xdist workers; 0 runs in-process. Serial is the default because each worker starts its
# own moto server: on a 2-CPU machine -n 2 took 29-33 s against 14-27 s serial (115 tests).
PYTEST_WORKERS ?= 0

# uv must install into .venv (not an activated environment or a uv default elsewhere) and must
# never fetch a Python of its own: the interpreter is the one .venv was created with.
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never

.DEFAULT_GOAL := test
.PHONY: demo test bench lint fmt clean

demo: $(INSTALLED)
	$(BIN)/payledger demo

# Lint first: a failing check stops the run before the tests.
test: lint
	$(BIN)/pytest -n $(PYTEST_WORKERS)

# Every bench/*.py script (helpers named _*.py are skipped); stops at the first that fails.
bench: $(INSTALLED)
	@set -e; found=0; \
	for script in bench/*.py; do \
	    [ -f "$$script" ] || continue; \
	    case "$${script##*/}" in _*) continue ;; esac; \
	    found=1; echo "==> $$script"; \
	    $(BIN)/python "$$script"; \
	done; \
	[ "$$found" = 1 ] || echo "no benchmarks in bench/"

# Runs every check even when an earlier one fails, so one run reports all problems.
lint: $(INSTALLED)
	@status=0; \
	echo "==> ruff check"; $(BIN)/ruff check . || status=1; \
	echo "==> ruff format --check"; $(BIN)/ruff format --check . || status=1; \
	echo "==> mypy"; $(BIN)/mypy || status=1; \
	if ls bench/*.py >/dev/null 2>&1; then \
	    echo "==> mypy bench"; $(BIN)/mypy bench/*.py || status=1; \
	fi; \
	echo "==> lint-imports"; $(BIN)/lint-imports --no-logo || status=1; \
	exit $$status

fmt: $(INSTALLED)
	$(BIN)/ruff check --select I --fix .
	$(BIN)/ruff format .

# Caches and build output only; `rm -rf .venv` for a fresh bootstrap, `.payledger/` holds local
# stack data.
clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache dist build
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# A venv made by `uv venv` has no pip; ensurepip adds it.
$(UV_STAMP): | $(BIN)/python
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	rm -f $(VENV)/.uv-*
	touch $@

# --locked: fail if uv.lock is stale instead of silently re-resolving.
# --inexact: keep uv and pip, which are not in the lock, in the venv.
$(INSTALLED): pyproject.toml uv.lock $(UV_STAMP)
	$(UV) sync --locked --extra dev --inexact
	touch $@
