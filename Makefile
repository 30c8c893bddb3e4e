# fraudscore: `make run` starts the system, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# -qq: pip's errors only (its warnings and setuptools' editable-install notice are not ours).
PIP := $(PY) -m pip install -qq
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
REQ := requirements
LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28

.PHONY: run test browser test-unit lint typecheck format lock migrate clean

run: $(RUN_STAMP)
	@$(PY) scripts/run_local.py

# PostgreSQL and Redis: the machine's when they answer, else throwaway ones (tests/services.py).
test: $(DEV_STAMP) browser
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

# The browser tests drive Debian's headless Chromium: installed with apt-get where we may.
browser:
	@command -v chromedriver >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& echo "install   chromium and chromium-driver for the browser tests (apt-get)" \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium chromium-driver >/dev/null 2>&1; } \
		|| echo "note      browser tests skipped: apt-get install chromium chromium-driver"

# Unit tests only: no PostgreSQL, Redis, S3 endpoint or worker needed.
test-unit: $(DEV_STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Re-lock every transitive package with hashes after editing a requirements/*.in file.
lock: $(DEV_STAMP)
	$(LOCK) $(REQ)/api.in $(REQ)/worker.in $(REQ)/local.in $(REQ)/dev.in -o $(REQ)/dev.txt
	$(LOCK) -c $(REQ)/dev.txt $(REQ)/api.in $(REQ)/worker.in -o $(REQ)/production.txt
	$(LOCK) -c $(REQ)/dev.txt $(REQ)/api.in $(REQ)/worker.in $(REQ)/local.in -o $(REQ)/local.txt

migrate: $(RUN_STAMP)
	$(PY) scripts/migrate.py

$(VENV)/bin/python:
	@echo "install   creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) --upgrade pip

# Locked packages (hash-checked), then this project editable on top, without resolving again.
$(RUN_STAMP): $(VENV)/bin/python $(REQ)/local.txt pyproject.toml
	@echo "install   $(REQ)/local.txt into $(VENV) (hash-checked; a minute the first time)"
	@$(PIP) --require-hashes -r $(REQ)/local.txt
	@$(PIP) --no-deps --no-build-isolation -e .
	@touch $@

$(DEV_STAMP): $(VENV)/bin/python $(REQ)/dev.txt pyproject.toml
	@echo "install   $(REQ)/dev.txt into $(VENV) (hash-checked)"
	@$(PIP) --require-hashes -r $(REQ)/dev.txt
	@$(PIP) --no-deps --no-build-isolation -e .
	@touch $@ $(RUN_STAMP)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
