"""Which Ray nodes ingest, and the per-node actors' names and placement.

Every node is one egress IP: its pairs share one REST budget (``budget:<node>``) and one stream
actor per 500 pairs (``stream:<node>:<n>``), both pinned to the node, because Binance counts weight
and connections per IP. Pairs go to the nodes that offer the ``cryptocast_ingest`` resource when
any node does (a cluster can keep ingestion off its head), else to every node with CPUs.
"""

from __future__ import annotations

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

NAMESPACE = "cryptocast"
INGEST_RESOURCE = "cryptocast_ingest"
BUDGET_PREFIX = "budget:"
STREAM_PREFIX = "stream:"
HOST_PREFIX = "pairs:"


def ingest_nodes() -> list[str]:
    """Alive nodes that take pairs, by node id (sorted, so placement is repeatable)."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    marked = [n for n in alive if n.get("Resources", {}).get(INGEST_RESOURCE, 0) > 0]
    chosen = marked or [n for n in alive if n.get("Resources", {}).get("CPU", 0) > 0]
    return sorted(n["NodeID"] for n in chosen)


def pinned(node_id: str) -> NodeAffinitySchedulingStrategy:
    """On ``node_id`` only: a per-node actor must never move to another node's IP."""
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def budget_name(node_id: str) -> str:
    return f"{BUDGET_PREFIX}{node_id}"


def stream_name(node_id: str, index: int) -> str:
    return f"{STREAM_PREFIX}{node_id}:{index}"


def host_name(node_id: str, index: int) -> str:
    return f"{HOST_PREFIX}{node_id}:{index}"


def named_actors(prefix: str) -> list[str]:
    """Names of this namespace's live named actors that start with ``prefix``."""
    return sorted(
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == NAMESPACE and entry["name"].startswith(prefix)
    )
