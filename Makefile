# fedweave: `make demo` runs a real federated job on this machine; `make test` runs the suite.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
FLOW   := $(VENV)/bin/flow

.PHONY: demo test check services install install-test bytecode bench bench-fate bench-fate-examples clean board-assets image broker-image

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

BOARD := flow/server/board
$(VENV)/.installed: $(VENV)/bin/activate setup.cfg $(BOARD)/static/vendor/.copied
	$(PIP) install -q -e '.[server]'
	touch $@

## board-assets: the board's front-end libraries from npm (pinned by its package-lock.json) into static/vendor
board-assets: $(BOARD)/static/vendor/.copied

$(BOARD)/static/vendor/.copied: $(BOARD)/web/package.json $(BOARD)/web/package-lock.json
	cd $(BOARD)/web && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(BOARD)/static/vendor
	cp $(BOARD)/web/node_modules/cytoscape/dist/cytoscape.min.js $(BOARD)/web/node_modules/dagre/dist/dagre.min.js \
	   $(BOARD)/web/node_modules/cytoscape-dagre/cytoscape-dagre.js $(BOARD)/web/node_modules/echarts/dist/echarts.min.js \
	   $(BOARD)/static/vendor/
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

## bytecode: the project's modules compiled once, as pip compiles an installed package's: an editable
## install does not, and where PYTHONDONTWRITEBYTECODE is set each job's processes compiled them anew
## (0.35 s of a job's supervisor start, more in its parties' pool workers)
bytecode: $(VENV)/.installed
	$(PY) -m compileall -q -j 0 flow components backends federation

install-test: $(VENV)/.installed-test

## demo: upload the example data and run examples/hetero_lr (guest 9999, host + arbiter 10000)
demo: install bytecode
	$(PY) examples/demo.py

## test: install the test extras, run the checks, start the services the suite needs, run the whole suite
test: install-test bytecode check services
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## check: lint and import order (ruff), the floors (import-linter, contracts in pyproject.toml), types (mypy)
check: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

services:
	bash tests/services.sh
	bash tests/services_postgres.sh
	bash tests/services_browser.sh
	bash tests/services_docker.sh

bench: install-test
	$(PY) bench/paillier.py
	$(PY) bench/hetero_lr.py
	$(PY) bench/sshe_lr.py
	$(PY) bench/secureboost.py
	$(PY) bench/homo_lr.py
	$(PY) bench/homo_nn.py
	$(PY) bench/ot.py
	$(PY) bench/federation.py
	$(PY) bench/compute_local.py
	$(PY) bench/compute.py
	$(PY) bench/audit.py
	$(PY) bench/board.py

## bench-fate: fedweave beside FATE 2.2 in the same run (FATE=DIR from ../shared/peers/fate/setup.sh DIR); SKIP_LARGE=1 for the breast and PSI jobs only, ONLY=KEY,... for those cases
bench-fate: install-test
	FEDWEAVE_BENCH_FATE=$(FATE) $(PY) bench/fate_compare.py $(if $(SKIP_LARGE),--skip-large) $(if $(ONLY),--only $(ONLY))

## bench-fate-examples: FATE's example suites at FATE's own sizes (per suite: validated, succeeded, refused, time)
bench-fate-examples: install-test
	$(PY) bench/fate_examples.py

## image: the flow server's image (Dockerfile); wheels of the project and of the .venv's pinned
## dependencies are built here first, so the build itself makes no network call
IMAGE        ?= fedweave/fedweave:$(shell sed -n 's/^version *= *//p' setup.cfg)
BASE_IMAGE   ?= python:3.11-slim
IMAGE_EXTRAS ?= server,rabbitmq,postgresql
WHEELS       := .image-wheels
image: install
	rm -rf $(WHEELS) && mkdir -p $(WHEELS)
	$(PIP) freeze --exclude-editable > $(WHEELS)/constraints.txt
	$(PIP) wheel -q --wheel-dir $(WHEELS) -c $(WHEELS)/constraints.txt '.[$(IMAGE_EXTRAS)]'
	docker build -q --network none --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg EXTRAS=$(IMAGE_EXTRAS) -t $(IMAGE) .

## broker-image: the bundled broker's image (deploy/rabbitmq/): Debian's rabbitmq-server at the version
## pinned in flow/ops/manifests.py, on a root filesystem made by debootstrap (deploy/base_image.sh,
## cached), built with no network call; the docker target and the bundle's manifests run this tag
RABBITMQ_VERSION := $(shell sed -n 's/^RABBITMQ_VERSION = "\(.*\)"/\1/p' flow/ops/manifests.py)
BROKER_IMAGE     := $(shell sed -n 's/^RABBITMQ_IMAGE = "\(.*\)"/\1/p' flow/ops/manifests.py)
BROKER_BASE      := fedweave-rabbitmq-base:$(subst +,-,$(RABBITMQ_VERSION))
broker-image:
	bash deploy/base_image.sh $(BROKER_BASE) rabbitmq-$(RABBITMQ_VERSION) rabbitmq-server=$(RABBITMQ_VERSION)
	docker build -q --network none --build-arg BASE_IMAGE=$(BROKER_BASE) \
	  --build-arg RABBITMQ_VERSION=$(RABBITMQ_VERSION) -t $(BROKER_IMAGE) deploy/rabbitmq

clean:
	rm -rf $(VENV) build *.egg-info $(WHEELS)
