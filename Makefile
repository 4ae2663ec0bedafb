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
# pytest-xdist workers (each starts its own moto server and embedded PostgreSQL); 0 runs
# in-process. On a 2-CPU machine the suite (771 tests) takes 3 min 15 s with 2 workers against
# 5 min serially.
PYTEST_WORKERS ?= 2

# uv must install into .venv (not an activated environment or a uv default elsewhere) and must
# never fetch a Python of its own: the interpreter is the one .venv was created with.
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never

# Tools whose pins conflict with ours get a venv of their own under .cache/ (which sam build
# never copies), installed from their fully pinned requirements file.
TOOLS := .cache/venvs
CHECKOV_ENV := $(TOOLS)/checkov
CHECKOV_STAMP := $(CHECKOV_ENV)/.installed
SAM_ENV := $(TOOLS)/sam-cli
SAM_STAMP := $(SAM_ENV)/.installed
# The SAM CLI runs on the functions' runtime, Python 3.12: the first python3.12 on PATH or under
# pyenv that really is 3.12 (a pyenv shim for a version not selected fails and is passed over).
PYTHON312 ?= $(shell for candidate in $$(command -v python3.12) \
    $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12.*/bin/python3.12; do \
    "$$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null \
    && { echo "$$candidate"; break; }; done)

.DEFAULT_GOAL := test
.PHONY: demo test bench lint fmt docs clean checkov-env sam-check

demo: $(INSTALLED)
	$(BIN)/payledger demo

# Lint first: a failing check stops the run before the tests. The template test runs checkov
# from its own venv and fails (not skips) when it is missing.
test: lint $(CHECKOV_STAMP)
	PAYLEDGER_REQUIRE_CHECKOV=1 $(BIN)/pytest -n $(PYTEST_WORKERS)

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

# The reference under docs/ as a static site in site/, offline; --strict fails on a broken link.
docs: $(INSTALLED)
	$(BIN)/mkdocs build --strict

# Caches and build output only; `rm -rf .venv` for a fresh bootstrap, `.payledger/` holds local
# stack data.
clean:
	rm -rf .cache .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache dist build
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

checkov-env: $(CHECKOV_STAMP)

$(CHECKOV_STAMP): requirements/checkov.txt
	rm -rf $(CHECKOV_ENV)
	$(PYTHON) -m venv $(CHECKOV_ENV)
	$(CHECKOV_ENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
	    -r requirements/checkov.txt
	touch $@

# `sam validate --lint` and `sam build`, as a deployer runs them, with the SAM CLI in its own venv.
sam-check: $(INSTALLED)
	@if [ -z "$(PYTHON312)" ]; then \
	    echo "sam-check skipped: no python3.12 (the functions' runtime) on PATH or under pyenv;"; \
	    echo "install Python 3.12 or run: make sam-check PYTHON312=/path/to/python3.12"; \
	    exit 0; \
	fi; \
	set -e; \
	if [ ! -f $(SAM_STAMP) ] || [ requirements/sam-cli.txt -nt $(SAM_STAMP) ]; then \
	    rm -rf $(SAM_ENV); \
	    "$(PYTHON312)" -m venv $(SAM_ENV); \
	    $(SAM_ENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
	        -r requirements/sam-cli.txt; \
	    touch $(SAM_STAMP); \
	fi; \
	export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}; \
	echo "==> sam validate --lint"; $(SAM_ENV)/bin/sam validate --lint; \
	echo "==> sam build"; PATH="$$(dirname "$(PYTHON312)"):$$PATH" $(SAM_ENV)/bin/sam build; \
	echo "==> package sizes (MB, unzipped; Lambda allows $(LAMBDA_SIZE_MAX_MB))"; \
	status=0; for built in .aws-sam/build/*Function; do \
	    size=$$(du -sm "$$built" | cut -f1); echo "  $${built##*/}: $$size"; \
	    [ "$$size" -le $(LAMBDA_SIZE_MAX_MB) ] || status=1; \
	done; exit $$status

# What `sam build` runs for each function (BuildMethod: makefile, in place): our packages and
# the dependencies uv.lock pins for them, as arm64 CPython 3.12 wheels for the runtime's glibc
# (Amazon Linux 2023: 2.34). The data libraries go only where they are used, at uv.lock's pins
# (no managed layer: another pyarrow would not be the one the archive is tested against):
# pyarrow into the archive function, pyarrow and DuckDB (with its httpfs extension) into the
# compaction function. Those two get the runtime's boto3 and no PostgreSQL driver, so that each
# stays within Lambda's 250 MB unzipped; pandas, awswrangler and numpy (optional for pyarrow)
# are never packaged, nor the CLI's typer and rich.
LAMBDA_PACKAGES := ledger projections archive handlers
LAMBDA_EXCLUDED := pyarrow duckdb duckdb-extension-httpfs awswrangler typer rich
LAMBDA_PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
	$(foreach glibc,2014 _2_28 _2_34,--platform manylinux$(glibc)_aarch64) \
	--implementation cp --python-version 3.12 --only-binary=:all:
LAMBDA_SIZE_MAX_MB := 250

# .cache/lambda/<set>: full (every function without data libraries), slim (no SDK, no
# PostgreSQL driver), pyarrow, duckdb (with httpfs). A stamp made through the build-% pattern
# rules is an intermediate file, which make deletes when the build ends: precious, it stays, so
# `sam build` (one make run per function) installs each set once, not once per function.
.PRECIOUS: .cache/lambda/%/.installed
.cache/lambda/%/.installed: pyproject.toml uv.lock $(UV_STAMP)
	rm -rf .cache/lambda/$* && mkdir -p .cache/lambda/$*/python
	$(UV) export --frozen --no-dev --no-emit-project --no-hashes \
	    $(foreach package,$(LAMBDA_EXCLUDED),--prune $(package)) \
	    $(if $(filter slim,$*),--prune psycopg --prune boto3 --prune botocore) \
	    > .cache/lambda/full-requirements-$*.txt
	$(UV) export --frozen --no-dev --no-emit-project --no-hashes \
	    | grep -E '^($(if $(filter pyarrow,$*),pyarrow,duckdb|duckdb-extension-httpfs))==' \
	    > .cache/lambda/data-requirements-$*.txt
	case $* in full|slim) cp .cache/lambda/full-requirements-$*.txt .cache/lambda/$*/requirements.txt;; \
	    *) cp .cache/lambda/data-requirements-$*.txt .cache/lambda/$*/requirements.txt;; esac
	test -s .cache/lambda/$*/requirements.txt
	$(LAMBDA_PIP_INSTALL) --target .cache/lambda/$*/python -r .cache/lambda/$*/requirements.txt
	touch $@

# $(1): the dependency sets to copy in.
define lambda_package
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is unset: sam build sets it"; exit 1; }
	$(foreach set,$(1),cp -R .cache/lambda/$(set)/python/. "$(ARTIFACTS_DIR)";)
	cp -R $(LAMBDA_PACKAGES) "$(ARTIFACTS_DIR)"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -prune -exec rm -rf {} +
endef

build-ArchiveFunction: .cache/lambda/slim/.installed .cache/lambda/pyarrow/.installed
	$(call lambda_package,slim pyarrow)

build-CompactFunction: .cache/lambda/slim/.installed .cache/lambda/pyarrow/.installed \
	    .cache/lambda/duckdb/.installed
	$(call lambda_package,slim pyarrow duckdb)

build-%Function: .cache/lambda/full/.installed
	$(call lambda_package,full)

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
