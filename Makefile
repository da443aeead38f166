# SubscriptionHub — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint install bench-bill-run clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

## Install, migrate, load demo data once, and run web + worker + beat (SQLite + filesystem broker by default).
run: install
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runall

## Install and run every test (unit, integration, real-worker flows, browser). Uses DATABASE_URL/REDIS_URL if set.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf var test-artifacts
