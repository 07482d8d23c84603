"""The rendered NetworkPolicies allow exactly the flows the system uses, and nothing else.

Every rendered pod, the components outside the namespace it talks to (ingress controller, KubeRay
operator, kube-dns) and a few outsiders (a pod of another namespace, a public address, the API
server's private address, the cloud metadata service) are put through ``tests.k8s.netpol`` on a
set of ports (Ray's fixed ones, one of its random worker ports, the services', DNS), and the
allowed connections are compared with the list below.
"""

from __future__ import annotations

import itertools

import pytest

from tests.k8s.manifests import OVERLAYS, pod_templates, rendered
from tests.k8s.netpol import Endpoint, Evaluator, selects

NAMESPACE = "cryptocast"
SERVE_HEAD, SERVE_WORKER = "cryptocast/head", "cryptocast/pairs"
INGEST_HEAD = "cryptocast-ingest/head"
INGEST_WORKERS = ("cryptocast-ingest/ingest", "cryptocast-ingest/train")
SERVE = (SERVE_HEAD, SERVE_WORKER)
INGEST = (INGEST_HEAD, *INGEST_WORKERS)
DASHBOARD, MIGRATE, POSTGRES, REDIS = "cryptocast-dashboard", "cryptocast-migrate", "postgres", "redis"
OUTSIDE = (
    Endpoint.pod("ingress-nginx", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    Endpoint.pod("kuberay-operator", "kuberay", {"app.kubernetes.io/name": "kuberay-operator"}),
    Endpoint.pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}),
    # a pod elsewhere that copies the serving pods' labels: labels alone must not let it in
    Endpoint.pod("other-namespace", "default", {"app.kubernetes.io/name": "cryptocast-serve"}),
    Endpoint("internet", address="203.0.113.10"),
    Endpoint("apiserver", address="172.18.0.2"),
    Endpoint("cloud-metadata", address="169.254.169.254"),
)
EXTERNAL = ("internet", "apiserver", "cloud-metadata")
RAY_WORKER_PORT = 20000  # one of the ports Ray picks at random for worker processes
PORTS = (
    *(
        (p, "TCP")
        for p in (53, 80, 443, 5432, 6379, 6443, 8000, 8050, 8080, 8265, 10001, 52365, RAY_WORKER_PORT)
    ),
    (53, "UDP"),
)
DNS = ((53, "UDP"), (53, "TCP"))


def _within(pods: tuple[str, ...]) -> set[tuple]:
    """Every port both ways between the pods of one Ray cluster."""
    return {(a, b, *port) for a, b in itertools.permutations(pods, 2) for port in PORTS}


def expected(pods: list[str]) -> set[tuple[str, str, int, str]]:
    flows = {(pod, "kube-dns", *port) for pod in pods for port in DNS}
    flows |= {
        ("ingress-nginx", SERVE_HEAD, 8000, "TCP"),
        ("ingress-nginx", DASHBOARD, 8050, "TCP"),
        (DASHBOARD, SERVE_HEAD, 8000, "TCP"),
        ("kuberay-operator", SERVE_HEAD, 8265, "TCP"),
        (INGEST_HEAD, REDIS, 6379, "TCP"),
    }
    flows |= _within(SERVE) | _within(INGEST)
    flows |= {(pod, POSTGRES, 5432, "TCP") for pod in (*SERVE, *INGEST, MIGRATE)}
    flows |= {(pod, "internet", 443, "TCP") for pod in (*SERVE, *INGEST)}
    flows |= {
        (head, out, port, "TCP")
        for head in (SERVE_HEAD, INGEST_HEAD)
        for out in EXTERNAL
        for port in (443, 6443)
    }
    return flows


def endpoints(overlay: str) -> list[Endpoint]:
    pods = [
        Endpoint.pod(where, NAMESPACE, template["metadata"]["labels"])
        for doc in rendered(overlay)
        for where, template in pod_templates(doc)
    ]
    return pods + list(OUTSIDE)


def allowed(overlay: str) -> set[tuple[str, str, int, str]]:
    evaluator = Evaluator([d for d in rendered(overlay) if d["kind"] == "NetworkPolicy"])
    found = set()
    for source, destination in itertools.permutations(endpoints(overlay), 2):
        if NAMESPACE not in (source.namespace, destination.namespace):
            continue  # neither end is governed by these policies
        found |= {
            (source.name, destination.name, *p) for p in PORTS if evaluator.allows(source, destination, *p)
        }
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_exactly_the_flows_the_system_uses_are_allowed(overlay: str) -> None:
    pods = [e.name for e in endpoints(overlay) if e.namespace == NAMESPACE]
    assert sorted(pods) == sorted([*SERVE, *INGEST, DASHBOARD, MIGRATE, POSTGRES, REDIS])
    got, want = allowed(overlay), expected(pods)
    assert not got - want, f"allowed but not used: {sorted(got - want)}"
    assert not want - got, f"used but not allowed: {sorted(want - got)}"


def test_every_pod_is_isolated_both_ways_by_a_default_deny() -> None:
    policies = [d for d in rendered("local") if d["kind"] == "NetworkPolicy"]
    (deny,) = [p for p in policies if p["metadata"]["name"] == "cryptocast-default-deny"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert all(p["metadata"]["namespace"] == NAMESPACE for p in policies)
    assert selects(deny["spec"]["podSelector"], {"any": "pod"})


def test_the_evaluator_reads_policies_as_kubernetes_does() -> None:
    web = Endpoint.pod("web", NAMESPACE, {"app": "web"})
    db = Endpoint.pod("db", NAMESPACE, {"app": "db"})
    stranger = Endpoint.pod("stranger", "elsewhere", {"app": "web"})
    assert Evaluator([]).allows(web, db, 5432)  # no policy: everything is open
    deny = {
        "metadata": {"namespace": NAMESPACE},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    assert not Evaluator([deny]).allows(web, db, 5432)
    to_db = {
        "metadata": {"namespace": NAMESPACE},
        "spec": {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}
            ],
        },
    }
    from_web = {
        "metadata": {"namespace": NAMESPACE},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": [{}]},
    }
    evaluator = Evaluator([deny, to_db, from_web])
    assert evaluator.allows(web, db, 5432)
    assert not evaluator.allows(web, db, 5433) and not evaluator.allows(web, db, 5432, "UDP")
    assert not evaluator.allows(stranger, db, 5432)  # a podSelector alone means this namespace
    assert not evaluator.allows(db, web, 5432)  # db may not send, web may not receive
