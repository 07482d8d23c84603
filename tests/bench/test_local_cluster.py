"""A local multi-node cluster behaves like several machines: actors land on the node asked for,
every server listens on loopback, and a node killed abruptly is declared dead, its actors with it,
while the rest of the cluster goes on. Nothing is left running after ``stop``.

The scaling benchmark counts on all of this; the figures (start time, idle memory, time to detect a
dead node) are printed for its report.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Iterator

import psutil
import pytest
import ray
from ray._common import tls_utils
from ray.exceptions import ActorDiedError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from bench.lib.cluster import HEAD, LABEL_KEY, HealthCheck, LocalCluster, NodeSpec
from tests.helpers import eventually_sync

WORKERS = [NodeSpec("alpha", 1, memory_mib=512), NodeSpec("beta", 2)]
# Probes every 500 ms, dead after 3 misses: about 1.5 s instead of Ray's default 15 s.
FAST_HEALTH = HealthCheck(period_ms=500, failure_threshold=3, timeout_ms=500)
DEAD_WITHIN_S = 20.0
CALL_TIMEOUT_S = 60.0
MIB = 2**20


@ray.remote(num_cpus=1, max_restarts=0)
class Where:
    """Reports where it runs and whether the job's worker start-up hook ran in its process."""

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def pid(self) -> int:
        return os.getpid()

    def hooked(self) -> bool:
        return tls_utils.add_port_to_grpc_server.__name__ == "bind_loopback"


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    started = time.monotonic()
    with LocalCluster(WORKERS, head_cpus=0, health_check=FAST_HEALTH) as local:
        print(
            f"\nhead + {len(WORKERS)} workers started in {time.monotonic() - started:.1f} s: {local.started_s}"
        )
        yield local


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.rpartition(":")[0].strip("[]"))
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def _alive(node_id: str) -> bool:
    (node,) = [n for n in ray.nodes() if n["NodeID"] == node_id]
    return bool(node["Alive"])


def _call_error(actor: ray.actor.ActorHandle) -> type[RayActorError] | None:
    try:
        ray.get(actor.node_id.remote(), timeout=CALL_TIMEOUT_S)
    except RayActorError as error:
        return type(error)
    return None


def _memory(process: psutil.Process) -> dict[str, float]:
    info = process.memory_full_info()
    return {"rss_mib": round(info.rss / MIB, 1), "uss_mib": round(info.uss / MIB, 1)}


@pytest.mark.slow
def test_nodes_place_fail_and_stop_like_machines(cluster: LocalCluster) -> None:
    with cluster.driver():
        every_pid = _place_and_fail(cluster)
    cluster.stop()
    assert cluster.remaining() == []
    assert not [pid for pid in every_pid if psutil.pid_exists(pid)]
    assert not cluster.root.exists()


def _place_and_fail(cluster: LocalCluster) -> set[int]:
    """Actors on the nodes asked for, loopback only, one node killed; every pid the cluster had."""
    ids = cluster.node_ids()
    assert len(set(ids.values())) == len(WORKERS) + 1

    nodes = {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}
    for spec in [cluster.head, *WORKERS]:
        node = nodes[ids[spec.name]]
        assert node["NodeManagerAddress"] == "127.0.0.1"
        assert node["Resources"].get("CPU", 0) == spec.num_cpus
        assert node["Resources"][spec.resource] == 1
        assert node["Labels"][LABEL_KEY] == spec.name
    assert nodes[ids["alpha"]]["Resources"]["memory"] == 512 * MIB

    # One actor pinned by node affinity, the other by the node's own resource.
    alpha = Where.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(ids["alpha"], soft=False)
    ).remote()
    beta = Where.options(resources={WORKERS[1].resource: 0.01}).remote()
    assert ray.get(alpha.node_id.remote(), timeout=CALL_TIMEOUT_S) == ids["alpha"]
    assert ray.get(beta.node_id.remote(), timeout=CALL_TIMEOUT_S) == ids["beta"]
    assert ray.get([alpha.hooked.remote(), beta.hooked.remote()], timeout=CALL_TIMEOUT_S) == [True, True]

    by_node = cluster.processes_by_node()
    alpha_pid = ray.get(alpha.pid.remote(), timeout=CALL_TIMEOUT_S)
    assert alpha_pid in {p.pid for p in by_node["alpha"]}
    assert alpha_pid not in {p.pid for p in by_node["beta"] + by_node[HEAD]}

    listening = cluster.listening()
    for name in ids:
        assert listening[name], f"node {name} listens on nothing: attribution failed"
    outside = [(name, a) for name, found in listening.items() for a in found if not _loopback(a[0])]
    assert not outside, outside

    print("memory by node:", cluster.memory_by_node())
    print(
        "idle raylet:", _memory(cluster.raylet("beta")), "actor worker:", _memory(psutil.Process(alpha_pid))
    )

    every_pid = {p.pid for processes in by_node.values() for p in processes}
    killed_at = time.monotonic()
    assert alpha_pid in cluster.kill("alpha")
    eventually_sync(
        lambda: not _alive(ids["alpha"]),
        "the killed node declared dead",
        timeout_s=DEAD_WITHIN_S,
        every_s=0.1,
    )
    print(f"killed node seen dead after {time.monotonic() - killed_at:.1f} s ({FAST_HEALTH})")
    # First unavailable (ActorUnavailableError, a RayActorError), then dead for good.
    eventually_sync(
        lambda: _call_error(alpha), "the actor on the killed node dead", until=lambda e: e is ActorDiedError
    )
    assert ray.get(beta.node_id.remote(), timeout=CALL_TIMEOUT_S) == ids["beta"]
    assert _alive(ids["beta"]) and _alive(ids[HEAD])
    return every_pid


def test_worker_names_are_checked() -> None:
    with pytest.raises(ValueError, match="must match"):
        NodeSpec("Bad Name", 1)
    with pytest.raises(ValueError, match="unique"):
        LocalCluster([NodeSpec("a", 1), NodeSpec("a", 1)])
    with pytest.raises(ValueError, match="unique"):
        LocalCluster([NodeSpec(HEAD, 1)])
