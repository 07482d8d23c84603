"""A local Ray started by start_ray listens on loopback only, Serve replicas included."""

from __future__ import annotations

import ipaddress
import os
import urllib.request
from collections.abc import Iterator

import pytest
import ray
from ray import serve

from cryptocast.actors.ray_runtime import _on_loopback, listening_addresses, start_ray, stop_ray
from cryptocast.settings import LOOPBACK
from tests.helpers import free_port

pytestmark = pytest.mark.slow

RAY_CPUS = 1
SMALL_CPU = 0.1
HTTP_TIMEOUT_S = 30
CORE_SERVERS = {"gcs_server", "raylet"}


@ray.remote(num_cpus=SMALL_CPU)
class Echo:
    def pid(self) -> int:
        return os.getpid()

    def niceness(self) -> int:
        return os.getpriority(os.PRIO_PROCESS, 0)


@serve.deployment(ray_actor_options={"num_cpus": SMALL_CPU})
class Hello:
    def __call__(self, request: object) -> str:
        return "hello"


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.rpartition(":")[0].strip("[]"))
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    start_ray(num_cpus=RAY_CPUS, namespace="test-ray-runtime")
    yield
    stop_ray()


def test_every_ray_server_listens_on_loopback(local_ray: None) -> None:
    actor = Echo.remote()
    assert ray.get(actor.pid.remote()) != os.getpid()
    port = free_port()
    serve.start(http_options={"host": LOOPBACK, "port": port})
    serve.run(Hello.bind(), route_prefix="/")
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/", timeout=HTTP_TIMEOUT_S) as response:
        assert response.read() == b"hello"

    listeners = listening_addresses()
    names = {name for _, name in listeners}
    assert names >= CORE_SERVERS, listeners
    assert any(name.startswith("ray::ServeReplica") for name in names), listeners
    exposed = [(address, name) for address, name in listeners if not _is_loopback(address)]
    assert not exposed
    serve.shutdown()


def test_start_ray_is_idempotent(local_ray: None) -> None:
    before = ray.get_runtime_context().get_node_id()
    start_ray(num_cpus=RAY_CPUS)
    assert ray.get_runtime_context().get_node_id() == before


def test_workers_run_at_normal_priority(local_ray: None) -> None:
    """Ray's default would start workers at nice 15, below everything else on the machine; the live
    paths run at 0 so that training trials can be niced below them."""
    echo = Echo.remote()
    try:
        assert ray.get(echo.niceness.remote(), timeout=HTTP_TIMEOUT_S) == 0
    finally:
        ray.kill(echo)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:6379", True),
        ("localhost:6379", True),
        ("[::1]:6379", True),
        ("10.0.0.5:6379", False),
        ("cryptocast-head-svc:6379", False),
        ("auto", False),
        ("ray://10.0.0.5:10001", False),
    ],
)
def test_a_cluster_on_loopback_is_joined_with_cluster_mode_off(address: str, loopback: bool) -> None:
    """Several nodes on one machine's loopback (benchmarks) are joined as a local head is started."""
    assert _on_loopback(address) is loopback
