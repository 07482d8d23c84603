"""Ray's control plane refuses whoever lacks the cluster's token: no token-less job submission.

Offline: every Ray container of both clusters, as rendered, turns token authentication on and takes
the token from its cluster's Secret, the one KubeRay is told about (``authOptions``) to call the
dashboard itself. Then, for real: a local Ray head started with the serving head's rendered Ray
environment (the Secret's value replaced by a test token) refuses a job submitted without the token
or with a wrong one, and accepts it with the token.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import psutil
import pytest

from bench.lib.processes import terminate
from cryptocast.k8s.entrypoint import require_token_auth
from cryptocast.k8s.render import RAY_SERVICE, find
from cryptocast.settings import LOOPBACK
from tests.helpers import eventually_sync, free_port
from tests.k8s.manifests import OVERLAYS, RAY_KINDS, pod_templates, ray_cluster, rendered

TOKEN_KEY = "auth_token"  # the key KubeRay reads from authOptions.secretName
INGEST_CLUSTER = "cryptocast-ingest"
START_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 10.0


def _ray_container(template: dict) -> dict:
    return template["spec"]["containers"][0]  # KubeRay's Ray container is the first


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_ray_container_requires_its_clusters_token_from_a_secret(overlay: str) -> None:
    secrets_used = set()
    for doc in (d for d in rendered(overlay) if d["kind"] in RAY_KINDS):
        auth = ray_cluster(doc)["authOptions"]
        assert auth["mode"] == "token", doc["metadata"]["name"]
        for where, template in pod_templates(doc):
            env = _env(_ray_container(template))
            assert env["RAY_AUTH_MODE"] == {"name": "RAY_AUTH_MODE", "value": "token"}, where
            reference = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
            assert reference == {"name": auth["secretName"], "key": TOKEN_KEY}, where
        secrets_used.add(auth["secretName"])
    assert len(secrets_used) == 2  # one token per cluster: serving pods cannot drive ingestion's Ray


def test_only_the_serving_heads_dashboard_leaves_its_pod() -> None:
    docs = list(rendered("local"))
    serve = ray_cluster(find(docs, "RayService", RAY_SERVICE))["headGroupSpec"]
    ingest = ray_cluster(find(docs, "RayCluster", INGEST_CLUSTER))["headGroupSpec"]
    assert ingest["rayStartParams"]["dashboard-host"] == LOOPBACK
    # KubeRay builds the head Service from the container's ports: no dashboard or Ray Client there
    assert {p["containerPort"] for p in _ray_container(ingest["template"])["ports"]} == {6379}
    assert {p["containerPort"] for p in _ray_container(serve["template"])["ports"]} == {6379, 8265, 8000}


def rendered_ray_env(template: dict, secret_values: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's ``RAY_*`` environment as the kubelet would give it, Secrets resolved."""
    env = {}
    for name, entry in _env(_ray_container(template)).items():
        if not name.startswith("RAY_"):
            continue
        reference = entry.get("valueFrom", {}).get("secretKeyRef")
        env[name] = secret_values[(reference["name"], reference["key"])] if reference else entry["value"]
    return env


def test_the_ingestion_entrypoint_runs_only_beside_a_head_with_token_auth() -> None:
    cluster = ray_cluster(find(list(rendered("local")), "RayCluster", INGEST_CLUSTER))
    secret = (cluster["authOptions"]["secretName"], TOKEN_KEY)
    require_token_auth(
        rendered_ray_env(cluster["headGroupSpec"]["template"], {secret: secrets.token_hex(32)})
    )
    for env in ({}, {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "t"}, {"RAY_AUTH_MODE": "token"}):
        with pytest.raises(RuntimeError, match="without Ray token authentication"):
            require_token_auth(env)


def _head_processes(temp_dir: Path) -> list[psutil.Process]:
    """Every process of the head started here (they name its temp dir), never another Ray."""
    found = {}
    for process in psutil.process_iter(["cmdline"]):
        with suppress(psutil.Error):
            if any(str(temp_dir) in arg for arg in process.info["cmdline"] or ()):
                found[process.pid] = process
                found.update((c.pid, c) for c in process.children(recursive=True))
    return list(found.values())


def _stop(temp_dir: Path) -> None:
    terminate(_head_processes(temp_dir))


def _gcs_health(url: str) -> int | str:
    """The dashboard's answer to a health check: its status code, or why there was none."""
    try:
        return httpx.get(f"{url}/api/gcs_healthz", timeout=REQUEST_TIMEOUT_S).status_code
    except httpx.HTTPError as error:
        return repr(error)


@pytest.fixture
def serve_head_env() -> dict[str, str]:
    cluster = ray_cluster(find(list(rendered("local")), "RayService", RAY_SERVICE))
    secret = (cluster["authOptions"]["secretName"], TOKEN_KEY)
    return rendered_ray_env(cluster["headGroupSpec"]["template"], {secret: secrets.token_hex(32)})


@pytest.fixture
def local_head(serve_head_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A Ray head on loopback with the rendered auth environment: (dashboard URL, its token)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="ccauth-", dir="/tmp"))  # short: Ray's socket paths
    dashboard_port = free_port()
    home = temp_dir / "home"  # as in the pod, an empty HOME: no ~/.ray/auth_token for Ray to fall back on
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"HOME": str(home)}
    env |= serve_head_env | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        f"--node-ip-address={LOOPBACK}",
        f"--port={free_port()}",
        "--num-cpus=1",
        "--include-dashboard=true",
        f"--dashboard-host={LOOPBACK}",
        f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    try:
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        url = f"http://{LOOPBACK}:{dashboard_port}"
        eventually_sync(
            lambda: _gcs_health(url),
            "the dashboard answering /api/gcs_healthz with 200",
            timeout_s=READY_TIMEOUT_S,
            every_s=0.5,
            until=lambda answer: answer == 200,
        )
        yield url, serve_head_env["RAY_AUTH_TOKEN"]
    finally:
        _stop(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_a_job_without_the_token_is_refused_by_a_head_with_the_rendered_env(
    local_head: tuple[str, str],
) -> None:
    url, token = local_head
    job = {"entrypoint": "echo submitted"}
    anonymous = httpx.post(f"{url}/api/jobs/", json=job, timeout=REQUEST_TIMEOUT_S)
    assert anonymous.status_code == 401, anonymous.text
    wrong = httpx.post(
        f"{url}/api/jobs/",
        json=job,
        headers={"Authorization": f"Bearer {secrets.token_hex(32)}"},
        timeout=REQUEST_TIMEOUT_S,
    )
    assert wrong.status_code == 403, wrong.text
    listed = httpx.get(f"{url}/api/jobs/", timeout=REQUEST_TIMEOUT_S)
    assert listed.status_code == 401  # reading jobs (their logs, their entrypoints) needs it too
    accepted = httpx.post(
        f"{url}/api/jobs/", json=job, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT_S
    )
    assert accepted.status_code == 200 and accepted.json()["job_id"], accepted.text
