"""Reading and patching the RayService's serveConfigV2 through the Kubernetes API, from a pod.

Uses the pod's service account (a Role allowing ``get`` and ``patch`` on that one RayService),
over plain HTTPS: one resource, two calls, no client library needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class RayServiceRef:
    namespace: str
    name: str

    @property
    def path(self) -> str:
        return f"/apis/ray.io/v1/namespaces/{self.namespace}/rayservices/{self.name}"


def in_cluster_client(account: Path = SERVICE_ACCOUNT, host: str = "", port: str = "") -> httpx.AsyncClient:
    """A client for the API server with the pod's token, CA and address (``KUBERNETES_SERVICE_*``)."""

    host = host or os.environ["KUBERNETES_SERVICE_HOST"]
    port = port or os.environ["KUBERNETES_SERVICE_PORT"]
    token = (account / "token").read_text().strip()
    return httpx.AsyncClient(
        base_url=f"https://{host}:{port}",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(account / "ca.crt"),
        timeout=REQUEST_TIMEOUT_S,
    )


def pod_namespace(account: Path = SERVICE_ACCOUNT) -> str:
    return (account / "namespace").read_text().strip()


async def declared_config(client: httpx.AsyncClient, ref: RayServiceRef) -> dict | None:
    """The serveConfigV2 the RayService declares now, parsed (None when empty)."""
    response = await client.get(ref.path)
    response.raise_for_status()
    return yaml.safe_load(response.json()["spec"].get("serveConfigV2") or "null")


async def patch_config(client: httpx.AsyncClient, ref: RayServiceRef, config: dict) -> None:
    """Replace serveConfigV2; KubeRay applies it to the running cluster in place."""
    body = {"spec": {"serveConfigV2": yaml.safe_dump(config, sort_keys=False)}}
    response = await client.patch(ref.path, json=body, headers={"Content-Type": MERGE_PATCH})
    response.raise_for_status()
