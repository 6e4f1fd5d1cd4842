# The service as plain processes on this machine (CPU defaults), and its checks.
# `make up` / `make down` / `make test` / `make bench`; settings from the environment or `.env`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: up down status install test lint typecheck test-light test-heavy check-docker bench

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

# Everything: style, types, the light suite (real Redis, real CPU models), the GPU backends on
# tiny models in their own environment, and the static checks of the Docker files.
test: lint typecheck test-light

bench: install
	$(PY) bench/e2e.py --out bench/results/e2e.md
