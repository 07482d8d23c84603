"""A multi-node Ray cluster on this one machine, every server on loopback, for scaling benchmarks.

A scaling benchmark needs several Ray nodes (each its own raylet, object store, workers and
agents, with its own CPUs and name) and the failure of one of them, without several machines.
:class:`LocalCluster` starts a head and worker nodes as separate process trees on 127.0.0.1, each
with its own temp dir, and kills, measures and stops them node by node.

How the nodes stay on loopback (Ray 2.60 on Linux): every server binds the node address, or all
interfaces unless that address is loopback, and Ray rewrites a loopback node or GCS address to the
host's routable one unless its "cluster mode" is off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, see
:mod:`cryptocast.actors.ray_runtime`). With cluster mode off, ``ray start --head`` keeps the head on
127.0.0.1, but ``ray start --address=...`` refuses to start a worker node at all ("Multi-node Ray
clusters are not supported on Windows and OSX"), and with it on, the CLI rewrites both the node
address and the GCS address to the routable IP, where the loopback GCS cannot be reached. So the
head is started by ``ray start --head``, and each worker node by this module run as a short
launcher process (``python -m bench.lib.cluster <json>``) that does what ``ray start --address``
does past that check: it builds the node's parameters with the node address 127.0.0.1 and starts a
``ray._private.node.Node`` (as ``ray.cluster_utils.Cluster.add_node`` does in Ray's own tests), then
exits, leaving the node's processes running as ``ray start`` does.

Every node and driver uses token authentication with the cluster's own token, passed through the
environment. Left to itself, ``ray start --head`` turns token authentication on whenever
``~/.ray/auth_token`` exists (any earlier local ``ray.init`` writes it), while a node started
directly and a driver given an explicit address do not: they would be refused by the GCS.

Nodes are told apart by a custom resource ``cryptocast_node_<name>`` (one unit) and a node label
``cryptocast/node=<name>``. A process belongs to the node whose temp dir its command line names
(the GCS, the raylet, the log monitor and, on the head, the monitor and the API server), or
descends from such a process (the workers, the dashboard agent and the runtime-env agent are the
raylet's children; they rename themselves ``ray::...``, so only descent ties them to a node).
Nothing else on the machine is touched: other Ray instances run beside this one.

A killed node is declared dead by the GCS's health check of its raylet, after
:class:`HealthCheck` ``period_ms`` x ``failure_threshold`` (15 s with Ray's defaults); calls to an
actor on it fail earlier with ``ActorUnavailableError``, then with ``ActorDiedError``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil

from bench.lib.harness import free_port, python_path
from bench.lib.processes import terminate
from cryptocast.actors.ray_runtime import (
    CLUSTER_MODE_ENV,
    CLUSTER_MODE_OFF,
    _cluster_mode_off,
    start_ray,
    stop_ray,
)
from cryptocast.settings import LOOPBACK

HEAD = "head"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")  # goes into resource names, labels and paths
RESOURCE_PREFIX = "cryptocast_node_"
LABEL_KEY = "cryptocast/node"
START_TIMEOUT_S = 120.0
KILL_WAIT_S = 10.0
MIB = 2**20
AUTH_MODE_ENV, AUTH_TOKEN_ENV, AUTH_TOKEN_PATH_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
RAY_BIN = Path(sys.executable).with_name("ray")


@dataclass(frozen=True)
class NodeSpec:
    """One node: its name, the CPUs it offers Ray, and optionally Ray's logical ``memory`` resource
    (MiB; a scheduling figure, not a limit the operating system enforces)."""

    name: str
    num_cpus: int
    memory_mib: int | None = None
    resources: dict[str, float] = field(default_factory=dict)  # more custom resources it offers

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"node name {self.name!r} must match {NAME_PATTERN.pattern}")
        if self.num_cpus < 0:
            raise ValueError(f"node {self.name}: num_cpus must be >= 0, not {self.num_cpus}")
        if self.memory_mib is not None and self.memory_mib <= 0:
            raise ValueError(f"node {self.name}: memory_mib must be > 0, not {self.memory_mib}")

    @property
    def resource(self) -> str:
        """The custom resource only this node has (one unit): ``resources={spec.resource: 0.01}``."""
        return RESOURCE_PREFIX + self.name


@dataclass(frozen=True)
class HealthCheck:
    """How the GCS probes each raylet; a node is declared dead after ``failure_threshold`` failed
    probes ``period_ms`` apart (each given ``timeout_ms``), so at about period x threshold after it
    died. Ray 2.60's defaults: 3000 ms, 5 failures, 10000 ms timeout (15 s to declare a node dead)."""

    period_ms: int = 3000
    failure_threshold: int = 5
    timeout_ms: int = 10000

    def system_config(self) -> dict[str, int]:
        return {
            "health_check_period_ms": self.period_ms,
            "health_check_failure_threshold": self.failure_threshold,
            "health_check_timeout_ms": self.timeout_ms,
        }


def _ports() -> dict[str, int]:
    """A free loopback port for each server of one node that would otherwise take a fixed default
    (and collide with the other nodes, or with other Ray instances on the machine)."""
    names = (
        "node_manager_port",
        "object_manager_port",
        "dashboard_agent_listen_port",
        "metrics_agent_port",
        "runtime_env_agent_port",
        "metrics_export_port",
    )
    return {name: free_port() for name in names}


@dataclass
class LocalCluster:
    """A head and worker nodes on 127.0.0.1, started on ``__enter__`` and stopped on ``__exit__``.

    ``head_cpus`` CPUs on the head (0: nothing but drivers' tasks pinned there by hand runs on it).
    """

    workers: list[NodeSpec]
    head_cpus: int = 0
    health_check: HealthCheck = field(default_factory=HealthCheck)
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    started_s: dict[str, float] = field(default_factory=dict)  # node name -> seconds its start took
    head: NodeSpec = field(init=False)
    root: Path = field(init=False)  # the nodes' temp dirs, removed by :meth:`stop`

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.workers]
        if HEAD in names or len(set(names)) != len(names):
            raise ValueError(f"worker names must be unique and not {HEAD!r}: {names}")
        self.head = NodeSpec(HEAD, self.head_cpus)
        self.root = Path(tempfile.mkdtemp(prefix="cccl-", dir="/tmp"))  # short: socket paths

    @property
    def address(self) -> str:
        """The GCS address, for ``ray.init(address=...)`` (with cluster mode off in the driver)."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def auth_env(self) -> dict[str, str]:
        """Token authentication with this cluster's own token, for its nodes and its drivers."""
        return {AUTH_MODE_ENV: "token", AUTH_TOKEN_ENV: self.token}

    @property
    def env(self) -> dict[str, str]:
        """The environment of every process of the cluster, and of drivers run as subprocesses."""
        env = {
            **os.environ,
            **self.auth_env,
            CLUSTER_MODE_ENV: CLUSTER_MODE_OFF,
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": python_path(),  # workers import the project and ``bench.lib``
        }
        env.pop(AUTH_TOKEN_PATH_ENV, None)
        return env

    @property
    def specs(self) -> dict[str, NodeSpec]:
        return {spec.name: spec for spec in [self.head, *self.workers]}

    def temp_dir(self, name: str) -> Path:
        return self.root / name  # Ray's Unix socket paths (at most 107 bytes) live under it

    # --- starting ---------------------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the head, then each worker node; everything is stopped again if any start fails."""
        try:
            self._start_head()
            for spec in self.workers:
                self._join(spec)
        except BaseException:
            self.stop()
            raise

    def _run(self, name: str, command: list[str]) -> None:
        started = time.monotonic()
        result = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"node {name} did not start ({result.returncode}): {(result.stdout + result.stderr)[-3000:]}"
            )
        self.started_s[name] = time.monotonic() - started

    def _start_head(self) -> None:
        ports = _ports()
        self._run(
            HEAD,
            [
                str(RAY_BIN),
                "start",
                "--head",
                f"--node-ip-address={LOOPBACK}",
                f"--port={self.port}",
                f"--node-name={HEAD}",
                f"--num-cpus={self.head_cpus}",
                f"--resources={json.dumps({self.head.resource: 1})}",
                f"--labels={LABEL_KEY}={HEAD}",
                "--include-dashboard=false",
                f"--ray-client-server-port={free_port()}",
                f"--dashboard-port={free_port()}",  # the API server runs without the dashboard too
                f"--node-manager-port={ports['node_manager_port']}",
                f"--object-manager-port={ports['object_manager_port']}",
                f"--dashboard-agent-listen-port={ports['dashboard_agent_listen_port']}",
                f"--dashboard-agent-grpc-port={ports['metrics_agent_port']}",
                f"--runtime-env-agent-port={ports['runtime_env_agent_port']}",
                f"--metrics-export-port={ports['metrics_export_port']}",
                "--min-worker-port=0",  # each worker takes a port the kernel picks
                "--max-worker-port=0",
                f"--temp-dir={self.temp_dir(HEAD)}",
                f"--system-config={json.dumps(self.health_check.system_config())}",
                "--disable-usage-stats",
            ],
        )

    def _join(self, spec: NodeSpec) -> None:
        params = {
            "gcs_address": self.address,
            "node_name": spec.name,
            "num_cpus": spec.num_cpus,
            "memory": spec.memory_mib * MIB if spec.memory_mib is not None else None,
            "resources": {spec.resource: 1, **spec.resources},
            "labels": {LABEL_KEY: spec.name},
            "temp_dir": str(self.temp_dir(spec.name)),
            **_ports(),
        }
        self._run(spec.name, [sys.executable, "-m", __name__, json.dumps(params)])

    @contextmanager
    def driver(self, namespace: str = "cryptocast") -> Iterator[None]:
        """This process connected to the cluster as a Ray driver, as :func:`start_ray` would connect
        one, and disconnected afterwards (before :meth:`stop`: a driver whose raylet dies is ended
        with it). The driver attaches to the head's raylet (Ray prefers the head among nodes on one
        IP), so worker nodes can be killed under it.

        Ray reads the token from the environment, so this
        cluster's token is set there while connected and the previous values restored afterwards.
        :func:`start_ray` gives the job's runtime env its worker start-up hook, which Ray runs in every
        worker of the job, on every node.
        """
        saved = {name: os.environ.get(name) for name in (*self.auth_env, AUTH_TOKEN_PATH_ENV)}
        os.environ.update(self.auth_env)
        os.environ.pop(AUTH_TOKEN_PATH_ENV, None)
        _reload_auth()
        try:
            start_ray(address=self.address, namespace=namespace)
            yield
        finally:
            stop_ray()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _reload_auth()

    # --- looking at the nodes ---------------------------------------------------------------------
    def _roots(self) -> dict[str, list[psutil.Process]]:
        """The processes of each node that name its temp dir on their command line (GCS, raylet,
        log monitor, monitor, API server); workers and agents rename themselves (``ray::...``)."""
        dirs = {name: str(self.temp_dir(name)) for name in self.specs}
        roots: dict[str, list[psutil.Process]] = {name: [] for name in self.specs}
        for process in psutil.process_iter(["cmdline"]):
            arguments = process.info["cmdline"] or ()
            for name, path in dirs.items():
                if any(a.endswith(path) or path + os.sep in a for a in arguments):
                    roots[name].append(process)
        return roots

    @staticmethod
    def _with_descendants(roots: list[psutil.Process]) -> list[psutil.Process]:
        tree = {p.pid: p for p in roots}
        for process in roots:
            with suppress(psutil.NoSuchProcess):
                tree.update((child.pid, child) for child in process.children(recursive=True))
        return list(tree.values())

    def processes_by_node(self) -> dict[str, list[psutil.Process]]:
        """Every live process of each node: those that name its temp dir and their descendants (the
        raylet's: workers, dashboard agent, runtime-env agent)."""
        return {name: self._with_descendants(roots) for name, roots in self._roots().items()}

    def raylet(self, name: str) -> psutil.Process:
        (raylet,) = [p for p in self.processes_by_node()[name] if _name(p) == "raylet"]
        return raylet

    def node_ids(self) -> dict[str, str]:
        """Ray's node id (hex) of each node, read from its raylet's ``--node_id`` argument."""
        ids = {}
        for name in self.specs:
            (flag,) = [a for a in self.raylet(name).cmdline() if a.startswith("--node_id=")]
            ids[name] = flag.partition("=")[2]
        return ids

    def memory_by_node(self) -> dict[str, dict[str, float | int]]:
        """Resident (RSS) and unique (USS) memory of each node's processes, summed, in MiB."""
        out: dict[str, dict[str, float | int]] = {}
        for name, processes in self.processes_by_node().items():
            rss = uss = 0.0
            counted = 0
            for process in processes:
                with suppress(psutil.NoSuchProcess):
                    info = process.memory_full_info()
                    rss += info.rss / MIB
                    uss += info.uss / MIB
                    counted += 1
            out[name] = {"rss_mib": round(rss, 1), "uss_mib": round(uss, 1), "processes": counted}
        return out

    def listening(self) -> dict[str, list[tuple[str, str]]]:
        """(host:port, process name) of every TCP socket each node listens on."""
        out = {}
        for name, processes in self.processes_by_node().items():
            found = set()
            for process in processes:
                with suppress(psutil.NoSuchProcess):
                    found |= {
                        (f"{c.laddr.ip}:{c.laddr.port}", _name(process))
                        for c in process.net_connections(kind="tcp")
                        if c.status == psutil.CONN_LISTEN
                    }
            out[name] = sorted(found)
        return out

    # --- failing and stopping ---------------------------------------------------------------------
    def kill(self, name: str) -> list[int]:
        """SIGKILL every process of worker node ``name``, as a machine failure would; returns their
        pids once they are gone. The node's own processes are frozen (SIGSTOP) first, so the raylet
        starts no worker between the listing of its children and the kill."""
        if name == HEAD or name not in self.specs:
            raise ValueError(f"{name!r} is not a worker node of this cluster")
        roots = self._roots()[name]
        for process in roots:
            with suppress(psutil.NoSuchProcess):
                process.suspend()
        processes = self._with_descendants(roots)
        for process in processes:
            with suppress(psutil.NoSuchProcess):
                process.kill()
        _, alive = psutil.wait_procs(processes, timeout=KILL_WAIT_S)
        if alive:
            raise RuntimeError(f"node {name}: processes survived SIGKILL: {[p.pid for p in alive]}")
        return [p.pid for p in processes]

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after a grace period, worker nodes before the
        head) and remove the temp dirs; a no-op for nodes already gone."""
        by_node = self.processes_by_node()
        for name in [*(spec.name for spec in self.workers), HEAD]:
            terminate(by_node[name])
        left = [p for processes in self.processes_by_node().values() for p in processes]
        terminate(left)  # anything a dying raylet started meanwhile
        shutil.rmtree(self.root, ignore_errors=True)

    def remaining(self) -> list[psutil.Process]:
        """Processes of this cluster still alive (none after :meth:`stop`)."""
        return [p for processes in self.processes_by_node().values() for p in processes]


def _reload_auth() -> None:
    """Make Ray in this process read the authentication settings from the environment again (its
    config first, then the token cache: the order Ray's own tests use)."""
    from ray._raylet import (  # type: ignore[attr-defined]  # both exist, ray's _raylet.pyi omits them
        AuthenticationTokenLoader,
        Config,
    )

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _name(process: psutil.Process) -> str:
    with suppress(psutil.Error):
        return process.name()
    return "?"


# --- the launcher of a worker node (``python -m bench.lib.cluster <json>``) -------------------------
def join_node(params: dict) -> None:
    """Start one worker node on 127.0.0.1 joining the GCS at ``params["gcs_address"]`` and return,
    leaving its processes running (what ``ray start --address`` does, without its refusal to run
    with cluster mode off)."""
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    _cluster_mode_off()  # as the environment already says: nothing here rewrites 127.0.0.1
    ray_params = RayParams(
        node_ip_address=LOOPBACK,
        min_worker_port=0,
        max_worker_port=0,
        **params,
    )
    Node(ray_params, head=False, shutdown_at_exit=False, spawn_reaper=False, connect_only=False)


if __name__ == "__main__":
    join_node(json.loads(sys.argv[1]))
