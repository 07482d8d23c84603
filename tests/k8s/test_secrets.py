"""Each Secret reaches only the pods that use it: a pod that is taken over gives away only its own.

Counted per rendered pod: env and envFrom references, secret volumes, and what KubeRay adds to Ray
pods from the cluster spec (the Ray token of ``authOptions`` in every pod of that cluster, the Redis
password of ``gcsFaultToleranceOptions`` in the head).
"""

from __future__ import annotations

import pytest

from tests.k8s.manifests import OVERLAYS, pod_templates, ray_cluster, rendered, values_under

DATABASE = "cryptocast-database"
API_TOKEN = "cryptocast-api-token"
RAY_SERVE = "cryptocast-ray-serve-token"
RAY_INGEST = "cryptocast-ray-ingest-token"
OBJECT_STORE = "cryptocast-object-store"  # model store credentials, read where models are read or written
SERVE = {RAY_SERVE, DATABASE, API_TOKEN, OBJECT_STORE}
INGEST = {RAY_INGEST, DATABASE, OBJECT_STORE}
EXPECTED = {
    "cryptocast/head": SERVE,
    "cryptocast/pairs": SERVE,
    "cryptocast-ingest/head": INGEST | {"cryptocast-redis"},
    "cryptocast-ingest/ingest": INGEST,
    "cryptocast-ingest/train": INGEST,
    "cryptocast-migrate": {DATABASE},
    "cryptocast-dashboard": set(),  # the viewer's own token comes with each request
    "postgres": {"cryptocast-postgres"},
    "redis": {"cryptocast-redis"},
}


def referenced(spec: dict) -> set[str]:
    """Secret names a pod spec references, wherever Kubernetes lets it."""
    names = {r["name"] for r in values_under(spec, "secretKeyRef") + values_under(spec, "secretRef")}
    return names | {v["secretName"] for v in values_under(spec, "secret")}


def secrets_by_pod(overlay: str) -> dict[str, set[str]]:
    found = {}
    for doc in rendered(overlay):
        cluster = ray_cluster(doc)
        for where, template in pod_templates(doc):
            names = referenced(template["spec"])
            if cluster:
                names |= {cluster.get("authOptions", {}).get("secretName")} - {None}
                if where.endswith("/head"):
                    names |= referenced(cluster.get("gcsFaultToleranceOptions", {}))
            found[where] = names
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_pod_references_only_the_secrets_it_uses(overlay: str) -> None:
    assert secrets_by_pod(overlay) == EXPECTED


def test_the_dashboard_holds_no_secret_and_no_service_account_token() -> None:
    (dashboard,) = [
        d
        for d in rendered("local")
        if d["metadata"]["name"] == "cryptocast-dashboard" and d["kind"] == "Deployment"
    ]
    spec = dashboard["spec"]["template"]["spec"]
    assert referenced(spec) == set() and spec["automountServiceAccountToken"] is False
    names = {e["name"] for c in spec["containers"] for e in c.get("env", [])}
    assert not names & {"CRYPTOCAST_API_TOKEN", "CRYPTOCAST_DATABASE_URL", "RAY_AUTH_TOKEN"}
