"""Deployment rules: no secrets in k8s/, pinned images, resources, probes, security contexts,
references that resolve, a narrow Role, and a Dockerfile that lints clean."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import ray
import typer
import yaml
from typer.main import get_command

from cryptocast.k8s.images import ImageRef, containers
from cryptocast.k8s.render import RAY_SERVICE, find
from tests.k8s.manifests import (
    K8S,
    OVERLAYS,
    RAY_KINDS,
    ROOT,
    all_containers,
    pod_specs,
    ray_cluster,
    rendered,
    values_under,
)

# Created out of band (docs/deploy.md); manifests may only reference them.
EXTERNAL_SECRETS = frozenset(
    {
        "cryptocast-database",
        "cryptocast-api-token",
        "cryptocast-ray-serve-token",
        "cryptocast-ray-ingest-token",
        "cryptocast-postgres",
        "cryptocast-redis",
        "cryptocast-object-store",
        "cryptocast-tls",
    }
)
REQUIRED_SECRETS = EXTERNAL_SECRETS - {"cryptocast-object-store", "cryptocast-tls"}  # optional, cloud only
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|DATABASE_URL|AUTH|KEY", re.IGNORECASE)
NOT_SECRETS = frozenset({"RAY_AUTH_MODE"})  # a switch ("token"), not a credential
CREDENTIAL_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
TAGGED = re.compile(r"^[^:@\s]+:(?!latest$)[A-Za-z0-9][A-Za-z0-9._-]*$")
DASHBOARD = "cryptocast-dashboard"
API_URL = f"http://{RAY_SERVICE}-serve-svc:8000"  # the Serve service KubeRay creates
HADOLINT = Path(sys.executable).with_name("hadolint")
ONE_SHOT = frozenset({"Job"})  # a migration run has nothing to probe; it succeeds or retries
INGEST_CLUSTER = "cryptocast-ingest"


def _k8s_files() -> list[Path]:
    return [p for p in K8S.rglob("*") if p.is_file()]


def test_no_secret_resources_or_values_in_k8s() -> None:
    assert _k8s_files()
    for path in _k8s_files():
        text = path.read_text()
        assert not CREDENTIAL_IN_URL.search(text), f"credentials in a URL in {path}"
        if path.suffix == ".yaml":
            kinds = [d.get("kind") for d in yaml.safe_load_all(text) if d]
            assert "Secret" not in kinds, f"a Secret is committed in {path}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_like_settings_come_from_secrets(overlay: str) -> None:
    for doc in rendered(overlay):
        for key in doc.get("data", {}) if doc["kind"] == "ConfigMap" else ():
            assert not SECRET_NAME.search(key), f"{key} in a ConfigMap"
    for doc, container in all_containers(overlay):
        for env in container.get("env", []):
            if SECRET_NAME.search(env["name"]) and env["name"] not in NOT_SECRETS:
                assert "secretKeyRef" in env.get("valueFrom", {}), f"{doc['metadata']['name']}: {env['name']}"


def test_local_images_are_pinned_by_tag() -> None:
    # kind/minikube load a locally built image by tag; it has no registry digest
    images = [c["image"] for _, c in all_containers("local")]
    assert images and all(TAGGED.match(i) for i in images), images
    base = re.search(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE).group(1)
    assert TAGGED.match(base), base


def test_cloud_images_are_pinned_by_digest() -> None:
    images = [ImageRef.parse(c["image"]) for _, c in all_containers("cloud")]
    assert images and all(i.pinned for i in images), sorted({str(i) for i in images if not i.pinned})
    assert {i.name.rpartition("/")[2] for i in images} == {"cryptocast", "postgres", "redis"}


def test_ray_versions_agree_image_manifests_and_installed() -> None:
    base = re.search(r"^FROM\s+rayproject/ray:(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE).group(
        1
    )
    assert base.startswith(f"{ray.__version__}-py311")
    for doc in (d for d in rendered("local") if d["kind"] in RAY_KINDS):
        version = doc["spec"].get("rayClusterConfig", doc["spec"])["rayVersion"]
        assert version == ray.__version__, doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_probes(overlay: str) -> None:
    checked = 0
    for doc, container in all_containers(overlay):
        where = f"{doc['metadata']['name']}/{container['name']}"
        resources = container.get("resources", {})
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(section, {})), f"{where}: {section}"
        if doc["kind"] not in ONE_SHOT:
            assert "livenessProbe" in container and "readinessProbe" in container, where
        checked += 1
    assert checked >= 9
    for doc in (d for d in rendered(overlay) if d["kind"] in RAY_KINDS):
        cluster = doc["spec"].get("rayClusterConfig", doc["spec"])
        assert {"requests", "limits"} <= set(cluster["autoscalerOptions"]["resources"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_non_root_without_privileges(overlay: str) -> None:
    for doc in rendered(overlay):
        for where, spec in pod_specs(doc):
            assert spec["securityContext"]["runAsNonRoot"] is True, where
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
            for container in spec["containers"]:
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False, where
                assert context["readOnlyRootFilesystem"] is True, where
                assert context["capabilities"]["drop"] == ["ALL"], where


def _names(docs: list[dict], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_references_resolve(overlay: str) -> None:
    docs = list(rendered(overlay))
    secrets = {
        r["name"] for d in docs for r in values_under(d, "secretKeyRef") + values_under(d, "secretRef")
    }
    secrets |= {t["secretName"] for d in docs for t in d.get("spec", {}).get("tls", [])}
    secrets |= {c["authOptions"]["secretName"] for d in docs if (c := ray_cluster(d))}
    assert REQUIRED_SECRETS <= secrets <= EXTERNAL_SECRETS
    deploy_doc = (ROOT / "docs" / "deploy.md").read_text()
    assert all(name in deploy_doc for name in secrets), "docs/deploy.md must say how to create each Secret"
    assert {r["name"] for d in docs for r in values_under(d, "configMapRef")} <= _names(docs, "ConfigMap")
    claims = {c["claimName"] for d in docs for c in values_under(d, "persistentVolumeClaim")}
    assert claims and claims <= _names(docs, "PersistentVolumeClaim")
    accounts = {a for d in docs for a in values_under(d, "serviceAccountName")}
    assert accounts <= _names(docs, "ServiceAccount")
    services = _names(docs, "Service") | {f"{RAY_SERVICE}-serve-svc"}  # KubeRay names it after the RayService
    backends = {b["service"]["name"] for d in docs for b in values_under(d, "backend")}
    assert backends and backends <= services


def test_only_the_ingestion_head_may_patch_only_the_rayservice() -> None:
    docs = list(rendered("local"))
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert role["rules"] == [
        {
            "apiGroups": ["ray.io"],
            "resources": ["rayservices"],
            "resourceNames": [RAY_SERVICE],
            "verbs": ["get", "patch"],
        }
    ]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    # KubeRay's autoscaler service account of the ingestion cluster is named after it
    assert [s["name"] for s in binding["subjects"]] == [
        find(docs, "RayCluster", INGEST_CLUSTER)["metadata"]["name"]
    ]
    ingest = find(docs, "RayCluster", INGEST_CLUSTER)
    assert ingest["spec"]["enableInTreeAutoscaling"] is True  # else KubeRay creates no such account


def test_ingestion_cluster_survives_head_restarts() -> None:
    ingest = find(list(rendered("cloud")), "RayCluster", INGEST_CLUSTER)
    redis = ingest["spec"]["gcsFaultToleranceOptions"]
    assert redis["redisAddress"].split(":")[0] in _names(list(rendered("cloud")), "Service")
    assert ingest["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    (head,) = containers({"spec": ingest["spec"]["headGroupSpec"]})
    script = " ".join(head["args"])
    assert "$KUBERAY_GEN_RAY_START_CMD" in script and "cryptocast k8s keep" in script


def _cli() -> typer.Typer:
    from cryptocast.cli import app

    return app


def _commands(overlay: str) -> set[tuple[str, ...]]:
    found = set()
    for _, container in all_containers(overlay):
        words = container.get("command", []) + container.get("args", [])
        text = " ".join(words)
        for match in re.finditer(r"cryptocast((?: [a-z][a-z0-9-]*)+)", text):
            found.add(tuple(match.group(1).split()[:2]))
    return found


def _exists(path: tuple[str, ...]) -> bool:
    command = get_command(_cli())
    for word in path:
        sub = getattr(command, "commands", {}).get(word)
        if sub is None:
            return not hasattr(command, "commands")  # a leaf: the rest are its arguments
        command = sub
    return True


@pytest.mark.parametrize("path", [("db", "upgrade"), ("k8s", "keep"), ("dashboard",)])
def test_commands_the_manifests_run_exist(path: tuple[str, ...]) -> None:
    used = {p[: len(path)] for p in _commands("local")}
    assert path in used
    assert _exists(path)


def test_hadolint_passes_the_dockerfile_and_catches_a_bad_one(tmp_path: Path) -> None:
    clean = subprocess.run(
        [str(HADOLINT), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM rayproject/ray:latest\nRUN pip install cryptocast\n")
    caught = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, timeout=60)
    assert caught.returncode != 0 and "DL3007" in caught.stdout and "DL3013" in caught.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_dashboard_calls_the_api_service_and_is_probed_on_healthz(overlay: str) -> None:
    (container,) = containers(find(list(rendered(overlay)), "Deployment", DASHBOARD))
    words = container["command"] + container.get("args", [])
    assert words[:2] == ["cryptocast", "dashboard"] and words[words.index("--api") + 1] == API_URL
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert {p["name"] for p in container["ports"]} == {"http"}
