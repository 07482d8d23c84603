"""Rendered manifests shared by the k8s tests, and walks over their pods and containers."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

from cryptocast.k8s.images import containers
from cryptocast.k8s.render import render
from cryptocast.k8s.serveconfig import offline_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("local", "cloud")
PAIRS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
RAY_KINDS = frozenset({"RayService", "RayCluster"})


@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    return tuple(render(overlay, lambda settings: offline_config(settings, list(PAIRS)), K8S))


def ray_cluster(doc: dict) -> dict | None:
    """The RayCluster spec of a RayCluster or RayService (None for other kinds)."""
    return doc["spec"].get("rayClusterConfig", doc["spec"]) if doc["kind"] in RAY_KINDS else None


def pod_templates(doc: dict) -> Iterator[tuple[str, dict]]:
    """(where, pod template) for every pod a manifest describes, Ray head and worker groups included."""
    spec = doc.get("spec", {})
    if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
        yield doc["metadata"]["name"], spec["template"]
    cluster = ray_cluster(doc)
    if cluster:
        yield f"{doc['metadata']['name']}/head", cluster["headGroupSpec"]["template"]
        for group in cluster.get("workerGroupSpecs", []):
            yield f"{doc['metadata']['name']}/{group['groupName']}", group["template"]


def pod_specs(doc: dict) -> Iterator[tuple[str, dict]]:
    """(where, pod spec) for every pod a manifest describes, Ray head and worker groups included."""
    for where, template in pod_templates(doc):
        yield where, template["spec"]


def all_containers(overlay: str) -> Iterator[tuple[dict, dict]]:
    """(manifest, container) for every container of an overlay."""
    for doc in rendered(overlay):
        for container in containers(doc):
            yield doc, container


def values_under(node: object, key: str) -> list:
    """Every value stored under ``key`` anywhere in a manifest (secret references, volumes, …)."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == key] + [
            x for v in node.values() for x in values_under(v, key)
        ]
    if isinstance(node, list):
        return [x for v in node for x in values_under(v, key)]
    return []
