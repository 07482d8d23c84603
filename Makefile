# Two set-up commands for a new machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

export TF_ENABLE_ONEDNN_OPTS := 0
export TF_CPP_MIN_LOG_LEVEL := 3
export RAY_DEDUP_LOGS := 0

.PHONY: run test test-fast lint bench venv system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

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
