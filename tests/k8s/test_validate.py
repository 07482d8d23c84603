"""Every rendered manifest is valid: Kubernetes schemas, KubeRay's CRD schemas, Ray's Serve schema."""

from __future__ import annotations

import importlib
import json

import jsonschema
import kubernetes_validate
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from cryptocast.k8s.render import RAY_SERVICE, cluster_env, find
from cryptocast.k8s.serveconfig import cluster_options, settings_from_env
from cryptocast.serve.config import PairEntry, build_config
from tests.k8s import kuberay
from tests.k8s.manifests import OVERLAYS, PAIRS, RAY_KINDS, pod_specs, rendered

K8S_VERSION = kubernetes_validate.latest_version()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_resources_validate_against_kubernetes_schemas(overlay: str) -> None:
    core = [d for d in rendered(overlay) if d["kind"] not in RAY_KINDS]
    assert len(core) >= 10
    for doc in core:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on any error


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ray_pod_templates_validate_as_kubernetes_pod_templates(overlay: str) -> None:
    for doc in (d for d in rendered(overlay) if d["kind"] in RAY_KINDS):
        for where, spec in pod_specs(doc):
            template = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "t"},
                "template": {"spec": spec},
            }
            try:
                kubernetes_validate.validate(template, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where}: {exc}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ray_resources_validate_against_kuberays_crds(overlay: str) -> None:
    kinds = sorted(d["kind"] for d in rendered(overlay) if d["kind"] in RAY_KINDS)
    assert kinds == ["RayCluster", "RayService"]
    for doc in (d for d in rendered(overlay) if d["kind"] in RAY_KINDS):
        schema = kuberay.schema(doc["kind"])
        jsonschema.Draft202012Validator.check_schema(schema)
        assert doc["apiVersion"] == kuberay.api_version(doc["kind"])
        errors = [
            f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)
        ]
        assert not errors, errors


@pytest.mark.parametrize(
    ("kind", "name", "path", "field", "misspelt"),
    [
        ("RayCluster", "cryptocast-ingest", ("spec", "workerGroupSpecs", 0), "maxReplicas", "maxReplica"),
        ("RayService", "cryptocast", ("spec",), "serveConfigV2", "serveConfigv2"),
        (
            "RayService",
            "cryptocast",
            ("spec", "rayClusterConfig", "headGroupSpec"),
            "rayStartParams",
            "rayStartParam",
        ),
    ],
)
def test_kuberays_crds_refuse_a_misspelt_field(
    kind: str, name: str, path: tuple, field: str, misspelt: str
) -> None:
    doc = json.loads(json.dumps(find(list(rendered("local")), kind, name)))
    node = doc
    for step in path:
        node = node[step]
    node[misspelt] = node.pop(field)
    errors = list(jsonschema.Draft202012Validator(kuberay.schema(kind)).iter_errors(doc))
    refused = [e.message for e in errors if e.validator == "additionalProperties"]
    assert len(refused) == 1 and repr(misspelt) in refused[0], [e.message for e in errors]


def _serve_config(overlay: str) -> dict:
    return yaml.safe_load(find(list(rendered(overlay)), "RayService", RAY_SERVICE)["spec"]["serveConfigV2"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serve_config_is_the_generated_config_and_valid_for_serve(overlay: str) -> None:
    config = _serve_config(overlay)
    ServeDeploySchema.model_validate(config)
    options = cluster_options(settings_from_env(cluster_env(list(rendered(overlay)))))
    pairs = [PairEntry(i, s) for i, s in enumerate(PAIRS, start=1)]
    assert config == build_config(pairs, options)
    assert [a["name"] for a in config["applications"]] == ["router"] + [f"pair_{p}" for p in PAIRS]
    # KubeRay applies it, so the router must not apply configs of its own; replicas bind all interfaces
    assert options.manage_config is False and config["http_options"]["host"] == "0.0.0.0"


def test_cloud_models_live_in_object_storage_local_on_the_volume() -> None:
    assert _serve_config("cloud")["applications"][1]["args"]["model_store"].startswith("s3://")
    assert _serve_config("local")["applications"][1]["args"]["model_store"].startswith("/shared/")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_import_paths_in_the_serve_config_import(overlay: str) -> None:
    for app in _serve_config(overlay)["applications"]:
        module, _, attribute = app["import_path"].partition(":")
        assert hasattr(importlib.import_module(module), attribute), app["import_path"]
