# The two commands of README.md:
#   make run    set everything up, start the gateway on etc/simulator.toml
#   make test   set everything up, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := tests/interop/node/node_modules/.installed
CONFIG ?= etc/simulator.toml
# The plugin file lives in ./twisted/plugins; an editable install does not expose it.
export PYTHONPATH := $(CURDIR)

.PHONY: setup run test lint bench clean

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(NODE_STAMP): tests/interop/node/package.json
	cd tests/interop/node && npm install --no-audit --no-fund --silent
	touch $@

run: $(STAMP)
	mkdir -p state
	$(VENV)/bin/twistd --nodaemon --pidfile= smpp-gateway --config $(CONFIG)

test: setup
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check gateway tests bench twisted
	$(VENV)/bin/ruff format --check gateway tests bench twisted
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench.e2e

clean:
	rm -rf $(VENV) tests/interop/node/node_modules state .pytest_cache .hypothesis
