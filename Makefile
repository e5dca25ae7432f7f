# The README's two commands: `make run` and `make test`. Everything they need installs from here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench venv clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

## Set up, migrate SQLite under var/, load bundled market data, start web + Celery worker + beat.
run: $(STAMP)
	$(PY) scripts/run_dev.py

## Set up, then ruff, mypy, makemigrations --check and the whole pytest suite (PostgreSQL + Redis when available).
test: $(STAMP)
	$(PY) scripts/run_tests.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m mypy

## Benchmarks: figures go in the README.
bench: $(STAMP)
	$(PY) bench/market_data.py
	$(PY) bench/optimizer.py

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
