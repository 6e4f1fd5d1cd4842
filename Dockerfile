# syntax=docker/dockerfile:1
# Every image of the service, from one file and two shared bases; the build context is the
# repository root. Compose picks the target and the service (docker-compose.yml, and
# docker-compose.gpu.yml for the GPU workers); by hand:
#
#   docker build --build-arg SERVICE=api -t s2s-api .
#   docker build --build-arg SERVICE=llm-worker --build-arg EXTRA='[cpu]' -t s2s-llm-worker-cpu .
#   docker build --build-arg DEPS=gpu --build-arg SERVICE=stt-worker \
#       --build-arg TORCH_VERSION=2.13.0 --build-arg GPU_PACKAGES='nemo_toolkit[asr]==3.0.0' -t s2s-stt-worker .
#
# Stages: `light` (the API and the CPU workers' dependencies) or `gpu` (a GPU worker's), chosen by
# DEPS; then `app`, the same for every image: the code, the user, the health check.
#
# Dependencies are installed before the code is copied (from the package definitions alone, with
# the versions of requirements.lock for the light images), so a code change rebuilds only the
# last layers. Every image runs as UID 10001 and reports its health with `s2s-health`. Weights are
# not baked in: GPU workers download theirs on first start into /models (a volume); the CPU
# defaults come inside wheels.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# torch 2.13 from PyPI is built for CUDA 13.0 (driver >= 580). For an older driver, build with
# TORCH_PIP_ARGS="--index-url <PyTorch's cu128 index>" and a matching CUDA_IMAGE.
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-runtime-ubuntu24.04
# Which dependency stage the image is built on: light or gpu.
ARG DEPS=light

# ---------------------------------------------------------------- the API and the CPU workers
FROM ${PYTHON_IMAGE} AS light
ARG SERVICE=api
# "[cpu]" for a worker's CPU default backend; empty for the API.
ARG EXTRA=
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    S2S_SERVICE=${SERVICE} \
    MODEL_CACHE_DIR=/models/s2s \
    HF_HOME=/models/huggingface
# llama.cpp links the system's OpenMP runtime, which the slim image lacks. The model volume is
# shared by the workers; a fresh named volume takes /models' owner.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --user-group s2s \
 && install -d -o s2s -g s2s /models
WORKDIR /app
COPY requirements.lock ./
COPY shared/pyproject.toml shared/
COPY ${SERVICE}/pyproject.toml ${SERVICE}/
RUN pip install --no-cache-dir -c requirements.lock "./shared[otel]" "./${SERVICE}${EXTRA}"

# ---------------------------------------------------------------- the GPU workers
FROM ${CUDA_IMAGE} AS gpu
ARG SERVICE=stt-worker
# The stage's pinned stack, e.g. "nemo_toolkit[asr]==3.0.0" or "chatterbox-tts==0.1.7".
ARG GPU_PACKAGES=
# torch alone and first, so no later requirement makes pip choose another build; empty for
# Chatterbox, which pins its own (2.6.0).
ARG TORCH_VERSION=
ARG TORCH_PIP_ARGS=
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    S2S_SERVICE=${SERVICE} \
    MODEL_CACHE_DIR=/models/s2s \
    HF_HOME=/models/huggingface \
    NEMO_CACHE_DIR=/models/nemo
# Unpinned apt packages: the CUDA base fixes the distribution release, and its security
# updates are wanted at each rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && useradd --create-home --uid 10001 --user-group s2s \
 && install -d -o s2s -g s2s /models
WORKDIR /app
# TORCH_PIP_ARGS and GPU_PACKAGES are split into words on purpose; hadolint takes them for
# unpinned packages, but every package in them is pinned by the compose file.
# hadolint ignore=DL3013,SC2086
RUN if [ -n "${TORCH_VERSION}" ]; then pip install --no-cache-dir $TORCH_PIP_ARGS "torch==${TORCH_VERSION}"; fi
COPY shared/pyproject.toml shared/
COPY ${SERVICE}/pyproject.toml ${SERVICE}/
# hadolint ignore=DL3013,SC2086
RUN pip install --no-cache-dir "./shared[otel]" "./${SERVICE}[gpu]" $GPU_PACKAGES \
      ${TORCH_VERSION:+"torch==${TORCH_VERSION}"}

# ---------------------------------------------------------------- every image: the code on top
# hadolint ignore=DL3006
FROM ${DEPS} AS app
ARG SERVICE=api
WORKDIR /app
COPY shared/ shared/
COPY ${SERVICE}/ ${SERVICE}/
RUN pip install --no-cache-dir --no-deps --force-reinstall ./shared "./${SERVICE}"
USER 10001:10001
# The first start of a GPU worker may spend long minutes downloading its weights.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60m --retries=3 CMD ["s2s-health"]
CMD ["s2s-run"]
