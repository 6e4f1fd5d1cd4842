"""The Kubernetes manifests (deploy/kubernetes): rendered as kustomize would (the resources, the
namespace, the images), every built-in object valid against the Kubernetes schemas
(kubernetes-validate), and in agreement with the code: one Deployment per service, a KEDA
ScaledObject per stage worker on that stage's RQ queue, GPUs where the models are, settings that
exist. KEDA's own kinds are checked against its CRD schemas by scripts/check-kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from redis import Redis
from test_settings import setting_names

from s2s.jobs import STAGES
from s2s.queues import StageQueues

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33"
CLUSTER_SCOPED = {"Namespace"}


def render() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization.get("images", [])}
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((DEPLOY / resource).read_text()):
            if not doc:
                continue
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
            for container in _containers(doc):
                container["image"] = images.get(container["image"], container["image"])
            docs.append(doc)
    return docs


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    containers: list[dict[str, Any]] = spec.get("containers", [])
    return containers


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in render() if d["kind"] == kind}


@pytest.mark.parametrize("doc", [d for d in render() if not d["apiVersion"].startswith("keda.sh/")], ids=str)
def test_every_builtin_object_is_valid_kubernetes(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_mistake() -> None:
    (api,) = [d for d in render() if d["kind"] == "Deployment" and d["metadata"]["name"] == "api"]
    api["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)
    api["spec"]["replicas"] = 2
    api["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # a typo: strict refuses it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)


def test_one_deployment_per_service_and_every_image_named() -> None:
    deployments = by_kind("Deployment")
    assert {"api", "stt-worker", "llm-worker", "tts-worker", "webhook-worker", "vllm"} <= set(deployments)
    for doc in render():
        for container in _containers(doc):
            assert "/" in container["image"] or container["image"].startswith("redis:"), container["image"]


def test_each_stage_worker_scales_on_its_own_queue() -> None:
    scaled = by_kind("ScaledObject")
    queues = StageQueues(Redis())  # only to name the keys: nothing connects
    for stage in STAGES:
        name = f"{stage.name}-worker"
        assert scaled[name]["spec"]["scaleTargetRef"]["name"] == name
        (trigger,) = scaled[name]["spec"]["triggers"]
        assert trigger["type"] == "redis"
        # The very list RQ keeps the stage's waiting jobs in.
        assert trigger["metadata"]["listName"] == queues.queue(stage).key == f"rq:queue:{stage.name}"
        assert trigger["authenticationRef"]["name"] in by_kind("TriggerAuthentication")


def test_gpus_where_the_models_are() -> None:
    deployments = by_kind("Deployment")

    def gpus(name: str) -> str | None:
        limits = _containers(deployments[name])[0]["resources"].get("limits", {})
        value: str | None = limits.get("nvidia.com/gpu")
        return value

    assert gpus("stt-worker") == gpus("tts-worker") == gpus("vllm") == "1"
    assert gpus("llm-worker") is None and gpus("api") is None  # the LLM workers only feed vLLM


def test_the_settings_given_are_settings_that_exist() -> None:
    known = setting_names() | {"HF_HOME", "HF_TOKEN", "S2S_SERVICE"}
    config = by_kind("ConfigMap")["s2s-config"]["data"]
    assert set(config) <= known, set(config) - known
    for doc in by_kind("Deployment").values():
        for container in _containers(doc):
            names = {e["name"] for e in container.get("env", [])}
            assert names <= known | {"REDIS_PASSWORD"}, names - known
