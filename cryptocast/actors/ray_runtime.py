"""Starting, joining and stopping Ray, with every local Ray server on loopback.

On Linux ``ray.init(_node_ip_address="127.0.0.1")`` is not enough: Ray rewrites a loopback node
address to the host's routable one (``ray._private.services.resolve_ip_for_localhost``), and every
server derives its bind address from the node address: the GCS, the raylet and each worker bind all
interfaces unless the node address is loopback, the dashboard agent and the runtime-env agent bind
the node address, the monitor and the dashboard's metrics endpoints bind all interfaces. Ray keeps
the node on 127.0.0.1 only with its "cluster mode" off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the
single-machine mode it uses on macOS and Windows); then every one of those servers binds loopback.

One server ignores the node address: each Ray Serve replica binds its inter-deployment gRPC server
to ``[::]:0`` (``ray/serve/_private/replica.py``, ``add_port_to_grpc_server(self._server, "[::]:0")``
in Ray 2.60). A worker start-up hook rewrites that bind address to loopback.

A local head lives as long as the *thread* that started it: Ray starts the GCS and the raylet with
Linux's parent-death signal, which follows the thread, not the process. Started from a worker
thread (a sweep in ``asyncio.to_thread``) they would be killed when that thread ends, and Ray's exit
handler would then wait 60 s for the dead GCS and exit 1. Off the main thread, :func:`start_ray`
therefore starts the head on a thread of its own that stays until :func:`stop_ray` or the end of
the process.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Callable

import psutil
import ray
from ray._common import tls_utils
from ray._private import ray_constants

from cryptocast.settings import LOOPBACK

log = logging.getLogger(__name__)

# Ray's switch for multi-machine clusters; "0" keeps a local node on loopback. Child processes read
# it from the environment, the driver read it once when ray was first imported.
CLUSTER_MODE_ENV = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
CLUSTER_MODE_OFF = "0"
RAY_ADDRESS_ENV = "RAY_ADDRESS"
WORKER_NICENESS_ENV = ray_constants.RAY_WORKER_NICENESS  # the niceness the raylet starts workers at
SERVING_NICENESS = 0
LOCAL_HEAD = "local"  # ray.init address that always starts a new head, whatever RAY_ADDRESS says
# Ray's own driver-side messages at WARNING; actors' stdout/stderr still reach the driver.
DRIVER_LOG_LEVEL = logging.WARNING
ALL_INTERFACES_V6 = "[::]"  # the bind host Serve replicas hard-code
HEAD_THREAD = "ray-local-head"  # holds a head started off the main thread (see the module docstring)
_head_released = threading.Event()  # set by stop_ray: the holding thread may end


def _grpc_on_loopback() -> None:
    """Worker start-up hook: gRPC servers that Ray code binds to ``[::]`` bind 127.0.0.1 instead.

    Patches the helper before ``ray.serve._private.replica`` imports it (actor classes load after
    the hook has run), so a replica's inter-deployment server listens on loopback.
    """
    bind = tls_utils.add_port_to_grpc_server

    def bind_loopback(server: object, address: str) -> int:
        host, _, port = address.rpartition(":")
        return bind(server, f"{LOOPBACK}:{port}" if host == ALL_INTERFACES_V6 else address)

    tls_utils.add_port_to_grpc_server = bind_loopback


def _serving_priority() -> None:
    """Ray's workers at nice 0, not Ray's default 15, so the live paths (ingestion actors, Serve
    replicas) run at the machine's normal priority and training trials can be niced below them
    (:func:`cryptocast.tune.sweep.lower_priority`). The raylet reads it at start; set it to override."""
    os.environ.setdefault(WORKER_NICENESS_ENV, str(SERVING_NICENESS))


def _cluster_mode_off() -> None:
    """Keep the node address (so every Ray server) on 127.0.0.1, however early ray was imported."""
    os.environ[CLUSTER_MODE_ENV] = CLUSTER_MODE_OFF
    ray_constants.ENABLE_RAY_CLUSTER = False


def start_ray(num_cpus: int | None = None, namespace: str = "cryptocast", address: str | None = None) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local head on loopback.

    Does nothing when Ray is already initialised in this process. A local head that would not sit
    on loopback is shut down again and refused, rather than left listening on the network.
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get(RAY_ADDRESS_ENV)
    if address and _on_loopback(address):
        # A cluster on this machine's loopback (several nodes on one host): with cluster mode on,
        # ray.init rewrites 127.0.0.1 to the routable address and finds no node there. The job's
        # workers, on every node, bind their servers to loopback as a local head's do.
        _cluster_mode_off()
        ray.init(
            address=address,
            namespace=namespace,
            logging_level=DRIVER_LOG_LEVEL,
            runtime_env={"worker_process_setup_hook": _grpc_on_loopback},
        )
        return
    if address:
        ray.init(address=address, namespace=namespace, logging_level=DRIVER_LOG_LEVEL)
        return
    _cluster_mode_off()
    _serving_priority()

    def start_head() -> None:
        ray.init(
            address=LOCAL_HEAD,
            num_cpus=num_cpus,
            namespace=namespace,
            include_dashboard=False,
            logging_level=DRIVER_LOG_LEVEL,
            runtime_env={"worker_process_setup_hook": _grpc_on_loopback},
        )

    if threading.current_thread() is threading.main_thread():
        start_head()
    else:
        _on_lasting_thread(start_head)
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:
        stop_ray()
        raise RuntimeError(f"local Ray came up on {node_ip}, not {LOOPBACK}; refusing to run it")
    log.info("local Ray started on %s with %s CPUs", LOOPBACK, ray.cluster_resources().get("CPU"))


def _on_loopback(address: str) -> bool:
    """Whether a ``host:port`` cluster address names this machine's loopback."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, "auto", a ray:// URL: a cluster elsewhere
        return False


def _on_lasting_thread(start: Callable[[], None]) -> None:
    """Run ``start`` on a daemon thread that then waits for :func:`stop_ray`, so the processes it
    starts outlive the calling thread; ``start``'s exception is raised here."""
    started, failed = threading.Event(), []
    _head_released.clear()

    def hold() -> None:
        try:
            start()
        except BaseException as exc:  # handed to the caller, which waits for it below
            failed.append(exc)
            return
        finally:
            started.set()
        _head_released.wait()

    threading.Thread(target=hold, name=HEAD_THREAD, daemon=True).start()
    started.wait()
    if failed:
        raise failed[0]


def stop_ray() -> None:
    """Shut Ray down (a local head and all its processes with it); a no-op when not running."""
    if ray.is_initialized():
        ray.shutdown()
    _head_released.set()


def ray_processes() -> list[psutil.Process]:
    """The driver, plus every process the local head started and their descendants (workers, agents).

    When this process joined an existing cluster, the head's processes are not ours: only the
    driver is returned.
    """
    driver = psutil.Process()
    node = ray._private.worker._global_node
    started: list[int] = (
        [info.process.pid for infos in node.all_processes.values() for info in infos] if node else []
    )
    processes = {driver.pid: driver}
    for pid in started:
        try:
            root = psutil.Process(pid)
            processes.update({p.pid: p for p in [root, *root.children(recursive=True)]})
        except psutil.NoSuchProcess:
            continue
    return list(processes.values())


def _format(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ipaddress.ip_address(ip).version == 6 else f"{ip}:{port}"


def listening_addresses() -> list[tuple[str, str]]:
    """(address:port, process name) of every TCP socket that this session's Ray processes listen on.

    The evidence that Ray serves loopback only; IPv6 addresses are bracketed ("[::1]:port").
    """
    found = []
    for process in ray_processes():
        try:
            name = process.name()
            connections = process.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [
            (_format(c.laddr.ip, c.laddr.port), name) for c in connections if c.status == psutil.CONN_LISTEN
        ]
    return sorted(found)
