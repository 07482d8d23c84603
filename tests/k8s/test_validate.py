"""Every rendered manifest is valid: Kubernetes schemas, the KubeRay schema, Ray's Serve schema."""

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
from tests.k8s.manifests import K8S, OVERLAYS, PAIRS, RAY_KINDS, pod_specs, rendered

K8S_VERSION = kubernetes_validate.latest_version()
RAY_SCHEMA = json.loads((K8S / "schemas" / "ray.io-v1.json").read_text())


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
def test_ray_resources_validate_against_the_kuberay_schema(overlay: str) -> None:
    jsonschema.Draft202012Validator.check_schema(RAY_SCHEMA)
    validator = jsonschema.Draft202012Validator(RAY_SCHEMA)
    kinds = sorted(d["kind"] for d in rendered(overlay) if d["kind"] in RAY_KINDS)
    assert kinds == ["RayCluster", "RayService"]
    for doc in (d for d in rendered(overlay) if d["kind"] in RAY_KINDS):
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, errors


def test_the_kuberay_schema_refuses_a_misspelt_field() -> None:
    doc = json.loads(json.dumps(find(list(rendered("local")), "RayCluster", "cryptocast-ingest")))
    doc["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    assert not jsonschema.Draft202012Validator(RAY_SCHEMA).is_valid(doc)


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
