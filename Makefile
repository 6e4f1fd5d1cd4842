# The service as plain processes on this machine (CPU defaults), and its checks.
# `make up` / `make down` / `make test` / `make bench`; settings from the environment or `.env`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: up down status install test lint typecheck test-light test-heavy check-docker bench load

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

# The GPU backends on tiny models built at test time, in their own environment (torch 2.13 CPU,
# NeMo, transformers), so the light environment stays free of torch.
test-heavy:
	scripts/heavy-env
	.venv-heavy/bin/python -m pytest tests/heavy -q

# No Docker engine needed: `docker-compose config` and hadolint.
check-docker:
	scripts/check-docker

# Everything: style, types, the light suite (real Redis, real CPU models, crash tests), the GPU
# backends on tiny models, and the static checks of the Docker files.
test: lint typecheck check-docker test-heavy test-light

bench: install
	$(PY) bench/e2e.py --out bench/results/e2e.md

load: install
	$(PY) bench/load.py --out bench/results/load.md
