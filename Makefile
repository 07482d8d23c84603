# Two set-up commands for a new machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
UV_VERSION := 0.13.9
PYTEST_ARGS ?=

export TF_ENABLE_ONEDNN_OPTS := 0
export TF_CPP_MIN_LOG_LEVEL := 3
export RAY_DEDUP_LOGS := 0

.PHONY: run test test-fast lint bench venv lock system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The exact versions of requirements.lock, then the project itself; pip check fails when the lock
# lacks something pyproject.toml asks for.
$(STAMP): $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check || { echo "$(LOCK) is behind pyproject.toml: run make lock" >&2; exit 1; }
	touch $(STAMP)

venv: $(STAMP)

## lock: pin the runtime dependencies and the test extra in requirements.lock (Linux x86_64, Python
## 3.11); versions already pinned there are kept, so only new or changed requirements move
lock: $(BIN)/python
	$(BIN)/uv --version 2>/dev/null | grep -q '^uv $(UV_VERSION) ' || $(BIN)/pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 \
		--python-platform x86_64-unknown-linux-gnu --custom-compile-command 'make lock' --quiet -o $(LOCK)

## run: the whole system on the embedded defaults (embedded PostgreSQL, local Ray, replay exchange)
run: venv
	$(BIN)/cryptocast up

## system-deps: Debian packages the test suite needs (PostgreSQL 15 server, Chromium, Redis)
system-deps:
	bash scripts/system-deps.sh

## test: install what is needed, start what is needed, the lint gate, then the whole suite
test: venv system-deps lint
	bash scripts/test.sh $(PYTEST_ARGS)

## test-fast: the suite without the slow end-to-end tests (for development)
test-fast: venv
	$(BIN)/pytest -m "not slow" -x $(PYTEST_ARGS)

## lint: the gate CI runs first: ruff's rules, ruff's formatting (checked, not applied) and mypy
lint: venv
	$(BIN)/ruff check cryptocast tests bench
	$(BIN)/ruff format --check cryptocast tests bench
	$(BIN)/mypy cryptocast

bench: venv
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
