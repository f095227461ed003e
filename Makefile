# fedweave: `make demo` runs a real federated job on this machine; `make test` runs the suite.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
FLOW   := $(VENV)/bin/flow

.PHONY: demo test check services install install-test bench bench-fate-examples clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/activate setup.cfg
	$(PIP) install -q -e '.[server]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## demo: upload the example data and run examples/hetero_lr (guest 9999, host + arbiter 10000)
demo: install
	$(PY) examples/demo.py

## test: install the test extras, run the checks, start the services the suite needs, run the whole suite
test: install-test check services
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## check: lint and import order (ruff), the floors (import-linter, contracts in pyproject.toml), types (mypy)
check: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

services:
	bash tests/services.sh
	bash tests/services_postgres.sh

bench: install-test
	$(PY) bench/paillier.py
	$(PY) bench/hetero_lr.py
	$(PY) bench/secureboost.py
	$(PY) bench/homo_lr.py
	$(PY) bench/federation.py
	$(PY) bench/compute_local.py
	$(PY) bench/compute.py
	$(PY) bench/audit.py

## bench-fate-examples: FATE's example suites at FATE's own sizes (per suite: validated, succeeded, refused, time)
bench-fate-examples: install-test
	$(PY) bench/fate_examples.py

clean:
	rm -rf $(VENV) build *.egg-info
