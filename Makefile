# The service as plain processes on this machine (CPU defaults), and its checks.
# `make up` / `make down` / `make test` / `make bench`; settings from the environment or `.env`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: up down status install test test-fast lint typecheck test-light test-heavy check-docker check-monitoring check-kubernetes bench load quality lock

up:
	@scripts/s2s up

down:
	@scripts/s2s down

status:
	@scripts/s2s status

install:
	@scripts/s2s install

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

test-light: install
	$(PY) -m pytest tests -q

# The quick loop (under a minute): style, types, unit and API tests; no model is loaded, no service
# process started (the `e2e` and `slow` tests are left out).
test-fast: lint typecheck
	$(PY) -m pytest tests -q -m "not e2e and not slow" --ignore=tests/heavy

# Re-resolve the pinned versions of everything `make up`, CI and the images install (see README).
lock:
	scripts/lock

# The GPU backends on tiny models built at test time, in their own environment (torch 2.13 CPU,
# NeMo, transformers), so the light environment stays free of torch.
test-heavy:
	scripts/heavy-env
	.venv-heavy/bin/python -m pytest tests/heavy -q

# No Docker engine needed: `docker-compose config` and hadolint.
check-docker:
	scripts/check-docker

# The Kubernetes manifests' KEDA resources against KEDA's schemas (the rest: tests/test_kubernetes.py).
check-kubernetes:
	scripts/check-kubernetes

# The monitoring profile's files: promtool on monitoring/prometheus.yml and on every dashboard query.
check-monitoring:
	scripts/check-monitoring

# Everything: style, types, the light suite (real Redis, real CPU models, crash tests), the GPU
# backends on tiny models, and the static checks of the Docker and monitoring files.
test: lint typecheck check-docker check-monitoring check-kubernetes test-heavy test-light

bench: install
	$(PY) bench/e2e.py --out bench/results/e2e.md

# Answers right, STT WER and the reply's round trip per LLM preset (starts the service itself).
quality: install
	$(PY) bench/quality.py --out bench/results/quality.md

load: install
	$(PY) bench/load.py --out bench/results/load.md
