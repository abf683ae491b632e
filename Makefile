# corelane — `make run` starts the image service, `make test` passes the tests.
# Both set themselves up in .venv: `run` installs only what the service needs (the `service`
# extra and the Socket.IO browser client from npm); `test` adds the test tools (the `test` extra)
# and, as root where apt-get exists, the system services the tests use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SERVICE_STAMP := $(VENV)/.installed-service
TEST_STAMP    := $(VENV)/.installed-test
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: setup run test soak lint bench sysdeps clean

define HOW_TO_REACH
@echo ""
@echo "corelane is installed in $(VENV). To use the command:"
@echo "  . $(VENV)/bin/activate && corelane --help     (or run $(VENV)/bin/corelane directly)"
@echo "  examples: $(VENV)/bin/python examples/primes.py"
endef

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(SERVICE_STAMP): pyproject.toml package.json | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[service]'
	bash scripts/fetch-assets.sh
	touch $@
	$(HOW_TO_REACH)

$(TEST_STAMP): $(SERVICE_STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(SERVICE_STAMP)

run: $(SERVICE_STAMP)
	$(VENV)/bin/corelane serve --host $(HOST) --port $(PORT)

sysdeps:
	bash scripts/ensure-system-deps.sh

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check corelane tests examples benchmarks
	$(VENV)/bin/mypy

test: $(TEST_STAMP) sysdeps lint
	$(VENV)/bin/python -m pytest -q -m "not slow"

# The long soaks (marked slow): repeated SIGKILLs of worker hosts and the like.
soak: $(TEST_STAMP) sysdeps
	$(VENV)/bin/python -m pytest -q -m slow

bench: $(TEST_STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) node_modules corelane/service/ui/static/vendor .pytest_cache .mypy_cache .ruff_cache
