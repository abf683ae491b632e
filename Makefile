# corelane — `make run` starts the image service, `make test` passes the tests.
# Both set themselves up: a virtualenv in .venv, the project with its extras, the Socket.IO
# browser client from npm, and (as root, where apt-get exists) the system services the tests use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: setup run test lint bench sysdeps clean

$(STAMP): pyproject.toml package.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	bash scripts/fetch-assets.sh
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/corelane serve --host $(HOST) --port $(PORT)

sysdeps:
	bash scripts/ensure-system-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check corelane tests examples benchmarks
	$(VENV)/bin/mypy

test: $(STAMP) sysdeps lint
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) node_modules corelane/service/ui/static/vendor .pytest_cache .mypy_cache .ruff_cache
