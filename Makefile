# The two commands: `make run` (the whole chain on the embedded default) and `make test`.
# Both create .venv if missing and install from the committed lock, so a fresh clone needs nothing else.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CUSTOMERS ?= 10000
DAYS      ?= 90
SEED      ?= 7

.PHONY: run test lint install lock clean-workspace bench

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or run: make PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9

$(STAMP): $(BIN)/python requirements.lock pyproject.toml
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/uv pip install --quiet -r requirements.lock
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/uv pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/cxi run --customers $(CUSTOMERS) --days $(DAYS) --seed $(SEED)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	@test ! -e mlflow/__init__.py || { echo "mlflow/__init__.py would shadow the mlflow package"; exit 1; }

test: lint
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q --nbmake notebooks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.identity

# Re-resolve the lock (only when requirements.in changes); constrained by the known-good set.
lock: $(BIN)/python
	$(BIN)/uv pip compile requirements.in -c constraints/known-good.txt --python-version 3.11 --no-header -o requirements.lock

clean-workspace:
	rm -rf workspace
