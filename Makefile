# fraudscore: `make run` starts the system, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
REQ := requirements

.PHONY: run test lint format migrate clean

run: $(RUN_STAMP)
	$(PY) scripts/run_local.py

test: $(DEV_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrate: $(RUN_STAMP)
	$(PY) scripts/migrate.py

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): $(VENV)/bin/python $(REQ)/base.txt $(REQ)/api.txt $(REQ)/worker.txt
	$(PY) -m pip install --quiet -r $(REQ)/api.txt -r $(REQ)/worker.txt
	touch $@

$(DEV_STAMP): $(VENV)/bin/python $(REQ)/base.txt $(REQ)/api.txt $(REQ)/worker.txt $(REQ)/dev.txt
	$(PY) -m pip install --quiet -r $(REQ)/dev.txt
	touch $@ $(RUN_STAMP)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
