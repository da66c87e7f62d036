# The README's two commands are `make demo` and `make test`; each sets up .venv when needed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
DEMO_DIR ?= data/demo

BASE_IMAGE ?= localhost/churnwatch-base:bookworm
IMAGE ?= localhost/churnwatch:latest

.PHONY: demo drift-demo test lint bench lock clean image

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUNTIME): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(DEV): requirements-dev.txt pyproject.toml $(RUNTIME)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## demo: simulate a log, ingest it, build snapshots, train and register a model, then
## evaluate the champion on a second log it never saw and print the report's path
demo: $(RUNTIME)
	@# the demo starts afresh: a store of this log alone, its own registry and champion
	rm -rf $(DEMO_DIR)/store $(DEMO_DIR)/mlflow.db $(DEMO_DIR)/mlartifacts $(DEMO_DIR)/evaluation
	$(VENV)/bin/churnwatch simulate --users 2000 --days 120 --seed 7 \
		--out $(DEMO_DIR)/sparkify_sim.jsonl.gz
	$(VENV)/bin/churnwatch ingest $(DEMO_DIR)/sparkify_sim.jsonl.gz --store $(DEMO_DIR)/store
	$(VENV)/bin/churnwatch snapshots --store $(DEMO_DIR)/store --out $(DEMO_DIR)/snapshots.parquet
	CHURNWATCH_DATA_DIR=$(DEMO_DIR) $(VENV)/bin/churnwatch train --store $(DEMO_DIR)/store
	@# as long as the training log and half its size: with 300 users over 60 days the
	@# unseen log's interval spanned 0.15 ROC-AUC, and most users had been seen a few weeks
	$(VENV)/bin/churnwatch simulate --users 1000 --days 120 --seed 8 \
		--out $(DEMO_DIR)/unseen_sim.jsonl.gz
	CHURNWATCH_DATA_DIR=$(DEMO_DIR) $(VENV)/bin/churnwatch evaluate \
		--data $(DEMO_DIR)/unseen_sim.jsonl.gz --out $(DEMO_DIR)/evaluation

## drift-demo: a simulated app release shifts adverts and errors; monitor week by week,
## alert, retrain; summary table and report in data/drift-demo (a few minutes)
drift-demo: $(RUNTIME)
	$(VENV)/bin/churnwatch demo --out data/drift-demo

## image: build the API image with podman. By default FROM a Debian bookworm base made here
## with mmdebstrap (docker/base-image.sh; Docker Hub is out of reach); elsewhere
## `make image BASE_IMAGE=python:3.11-slim-bookworm`. RUN steps use chroot isolation.
image:
	@if [ "$(BASE_IMAGE)" = "localhost/churnwatch-base:bookworm" ] && \
		! podman image exists $(BASE_IMAGE); then docker/base-image.sh $(BASE_IMAGE); fi
	podman build --format docker --isolation chroot --network host \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) .

## test: the whole test suite
test: $(DEV)
	$(PY) -m pytest

lint: $(DEV)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(DEV)
	$(PY) -m bench --out bench/results

## lock: regenerate the pinned requirements from pyproject.toml (needs network and uv)
lock:
	uv pip compile pyproject.toml --python-version 3.11 -o requirements.txt
	uv pip compile pyproject.toml --python-version 3.11 --extra dev --extra spark -o requirements-dev.txt

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
