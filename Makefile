# kubescim: `make demo` runs the whole story locally, `make test` runs every test.
# Both install what they need: a .venv with the project, and the Go-built control plane in .cache/bin.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv tools lint fmt test test-quick demo up down bench clean crds e2e-kind image cluster

help:
	@echo "make demo        local control plane + gateway + operator + Okta simulator, prints Teams/BUs"
	@echo "make test        lint + the whole test suite (what CI runs)"
	@echo "make test-quick  lint + tests not marked slow"
	@echo "make up / down   start / stop the local stack in the background (.local/stack.env)"
	@echo "make lint        ruff + mypy --strict + import-linter layer contracts"
	@echo "make bench       benchmarks -> bench/results/latest.{md,json} (BENCH_ARGS=--full for 100k users)"
	@echo "make image       the container image with podman (IMAGE=..., PYTHON_IMAGE=... for the official base)"
	@echo "make cluster     a single-node Kubernetes (kubelet, containerd, scheduler, controller-manager, kube-proxy)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

tools:
	@bash hack/build-tools.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: venv tools lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-quick: venv tools lint
	$(VENV)/bin/pytest -m 'not slow' $(PYTEST_ARGS)

demo: venv tools
	$(PY) -m kubescim_dev.stack demo

up: venv tools
	$(PY) -m kubescim_dev.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m kubescim_dev.stack down; else echo "nothing running"; fi

clean: down
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache

crds: venv
	$(PY) -m kubescim.api.crdgen
	$(PY) -m kubescim.api.docgen
	rm -f charts/kubescim-crds/files/crds/*.yaml && cp crds/*.yaml charts/kubescim-crds/files/crds/

bench: venv tools
	$(PY) -m bench.run $(BENCH_ARGS)

image:
	@bash hack/image.sh

cluster: venv tools
	@bash hack/build-tools.sh kubelet kube-controller-manager kube-scheduler kube-proxy containerd containerd-shim-runc-v2 ctr
	$(PY) -m kubescim_dev.cluster up

e2e-kind: venv
	bash hack/e2e-kind.sh
