"""GCS fault tolerance of the ingestion cluster, measured on one machine (``bench/gcs_ft.py``).

docs/deploy.md claims that ingestion survives a GCS crash and a whole head restart without losing a
minute; this reproduces both faults locally and measures recovery, and the slow tests
(``tests/k8s/test_gcs_ft.py``) run the same experiments and check those claims.

The ingestion RayCluster keeps its GCS tables in Redis (``gcsFaultToleranceOptions``), so a head
restart finds the detached supervisor again. This reproduces that locally: Debian's Redis on
127.0.0.1 with a password, a Ray head started by ``ray start --head`` with ``RAY_REDIS_ADDRESS``
(what KubeRay's generated start command does), ingestion of a few pairs from the replay exchange,
then one of two faults:

* ``gcs``: only the ``gcs_server`` process is killed and relaunched with the arguments and
  environment it had (read from ``/proc``), the raylet and every actor staying up;
* ``head``: every process of the head is stopped (SIGTERM, then SIGKILL: what ``ray stop`` does,
  limited to this head so that other Ray instances on the machine are left alone) and the head is
  started again with the same command, Redis and storage namespace, as a restarted head pod is.

Then it waits until every pair is live and caught up and reports the completeness check (missing
minutes, duplicates), the actors' ids and restart counts before and after, and how long each step
took. Ray talks to Ray only from short driver subprocesses (``python -m bench.lib.gcs_ft``, with
the repository root on their ``PYTHONPATH``): a driver connected while its raylet dies would be
ended with it. They run often while recovery is timed, so this module's top-level imports stay
light and :mod:`bench.lib.harness` is imported only where the experiment needs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import select
from sqlalchemy.engine import URL

from bench.lib.processes import STOP_GRACE_S, terminate
from cryptocast.settings import LOOPBACK

FAULTS = ("gcs", "head")
PAIRS = ("BTCUSDT", "ETHUSDT")
SPEED = 60.0  # replayed minutes per wall second: a 30 s outage is a 30-minute hole to repair
HISTORY_MS = 60 * 60_000
DOWN_S = 5.0  # how long the GCS or the head stays down (a container restart takes seconds)
HEAD_CPUS = 2
STEP_TIMEOUT_S = 240.0  # each wait (head start, all live, caught up) on a loaded two-core machine
DRIVER_TIMEOUT_S = 120.0
POLL_S = 1.0
SUPERVISOR = "supervisor"
DRIVER_MODULE = "bench.lib.gcs_ft"  # this module, run by ``python -m`` as the driver subprocess


def free_port() -> int:
    """A free loopback port (:func:`bench.lib.harness.free_port`, imported when first needed)."""
    from bench.lib.harness import free_port as harness_free_port

    return harness_free_port()


# --- Redis ------------------------------------------------------------------------------------------
@dataclass
class LocalRedis:
    """Debian's redis-server on loopback with a password, append-only like the cluster's."""

    directory: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(24))
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: run scripts/system-deps.sh")
        config = self.directory / "redis.conf"  # the password in a file, not on the command line
        config.write_text(
            f"bind {LOOPBACK}\nport {self.port}\nprotected-mode yes\nrequirepass {self.password}\n"
            f'dir {self.directory}\nappendonly yes\nsave ""\nlogfile {self.directory / "redis.log"}\n'
        )
        config.chmod(0o600)
        self.process = subprocess.Popen([binary, str(config)], start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.ping():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server did not start: {(self.directory / 'redis.log').read_text()}"
                )
            time.sleep(0.2)

    def _cli(self, command: str, check: bool) -> str:
        """One ``redis-cli`` command against this server (the password goes through the environment)."""
        result = subprocess.run(
            ["redis-cli", "-h", LOOPBACK, "-p", str(self.port), command],
            env={**os.environ, "REDISCLI_AUTH": self.password},
            capture_output=True,
            text=True,
            check=check,
        )
        return result.stdout.strip()

    def ping(self) -> bool:
        return self._cli("ping", check=False) == "PONG"

    def keys(self) -> int:
        return int(self._cli("dbsize", check=True))

    def stop(self) -> None:
        if self.process is not None:
            terminate([psutil.Process(self.process.pid)], STOP_GRACE_S)
            self.process.wait()


# --- the Ray head -----------------------------------------------------------------------------------
@dataclass
class LocalHead:
    """A Ray head on loopback whose GCS is backed by ``redis``; token authentication stays on."""

    redis: LocalRedis
    temp_dir: Path  # short: Ray's Unix socket paths live under it
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    namespace: str = field(default_factory=lambda: secrets.token_hex(8))  # KubeRay: the cluster's UID

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RAY_REDIS_ADDRESS": self.redis.address,
            "RAY_external_storage_namespace": self.namespace,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keeps every Ray server on 127.0.0.1
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def start_command(self) -> list[str]:
        """The same command for the first start and every restart (as a pod's command is)."""
        return [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            f"--node-ip-address={LOOPBACK}",
            f"--port={self.port}",
            f"--num-cpus={HEAD_CPUS}",
            "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--temp-dir={self.temp_dir}",
            "--disable-usage-stats",
        ]

    async def start(self) -> float:
        """``ray start --head``; the Redis password reaches Ray through ``--redis-password``."""
        started = time.monotonic()
        command = [*self.start_command(), f"--redis-password={self.redis.password}"]
        process = await asyncio.create_subprocess_exec(
            *command, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT_S)
        if process.returncode != 0:
            raise RuntimeError(f"ray start failed ({process.returncode}): {output.decode()[-3000:]}")
        return time.monotonic() - started

    def processes(self) -> list[psutil.Process]:
        """Every process of this head (GCS, raylet, agents, workers): they name its temp dir."""
        mine = str(self.temp_dir)
        found = {}
        for process in psutil.process_iter(["cmdline"]):
            with suppress(psutil.Error):
                if any(mine in arg for arg in process.info["cmdline"] or ()):
                    found[process.pid] = process
                    found.update((c.pid, c) for c in process.children(recursive=True))
        return list(found.values())

    def gcs_server(self) -> psutil.Process:
        (gcs,) = [p for p in self.processes() if p.name() == "gcs_server"]
        return gcs

    async def restart_gcs(self, down_s: float) -> int:
        """Kill ``gcs_server`` alone and relaunch it with its own argv and environment; the new pid."""
        gcs = self.gcs_server()
        argv = [a.decode() for a in Path(f"/proc/{gcs.pid}/cmdline").read_bytes().split(b"\0") if a]
        environ = dict(
            item.decode().split("=", 1)
            for item in Path(f"/proc/{gcs.pid}/environ").read_bytes().split(b"\0")
            if b"=" in item
        )
        gcs.kill()
        gcs.wait(STOP_GRACE_S)
        await asyncio.sleep(down_s)
        relaunched = subprocess.Popen(
            argv, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        return relaunched.pid

    def stop(self) -> None:
        terminate(self.processes(), STOP_GRACE_S)

    def listening(self) -> list[str]:
        """host:port of every TCP listener of the head and of Redis."""
        processes = self.processes()
        if self.redis.process is not None:
            processes.append(psutil.Process(self.redis.process.pid))
        found = set()
        for process in processes:
            with suppress(psutil.Error):
                found |= {
                    f"{c.laddr.ip}:{c.laddr.port}"
                    for c in process.net_connections(kind="tcp")
                    if c.status == psutil.CONN_LISTEN
                }
        return sorted(found)

    async def driver(self, command: str, payload: dict | None = None) -> dict:
        """Run ``python -m bench.lib.gcs_ft <command>`` against this head; its JSON answer."""
        from bench.lib.harness import python_path

        env = {**self.env, "RAY_ADDRESS": self.address, "PYTHONPATH": python_path()}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            DRIVER_MODULE,
            command,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(json.dumps(payload or {}).encode()), DRIVER_TIMEOUT_S
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise RuntimeError(f"driver {command} failed: {err.decode()[-3000:]}")
        return json.loads(out.decode().strip().splitlines()[-1])


@contextmanager
def local_cluster() -> Iterator[LocalHead]:
    """Redis and a head, both removed afterwards whatever happened (only this head's processes)."""
    root = Path(tempfile.mkdtemp(prefix="ccft-", dir="/tmp"))
    (root / "redis").mkdir()
    redis = LocalRedis(root / "redis")
    head = LocalHead(redis, root / "ray")
    try:
        redis.start()
        yield head
    finally:
        head.stop()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- the driver side (subprocesses) -----------------------------------------------------------------
def _actors() -> dict:
    """Named actors: id, state, restarts, pid (dead incarnations included)."""
    import ray._private.state

    return {
        "actors": [
            {
                "name": a["Name"],
                "id": a["ActorID"],
                "state": a["State"],
                "restarts": a["NumRestarts"],
                "pid": a["Pid"],
            }
            for a in ray._private.state.actors().values()
            if a["Name"]
        ]
    }


def driver_main(command: str, payload: dict) -> dict:
    """One short Ray driver: start the supervisor, or report the actors."""
    import ray

    from cryptocast.actors.ray_runtime import start_ray
    from cryptocast.actors.supervisor import start_supervisor

    start_ray(address=os.environ["RAY_ADDRESS"])
    try:
        if command == "start":
            supervisor = start_supervisor(
                payload["db_url"], payload["rest_url"], payload["stream_url"], lookback_ms=None
            )
            ray.get(supervisor.wake.remote(), timeout=DRIVER_TIMEOUT_S)
            return {"started": True}
        if command == "actors":
            return _actors()
        raise ValueError(f"unknown driver command {command!r}")
    finally:
        ray.shutdown()


# --- the experiment ---------------------------------------------------------------------------------
async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = STEP_TIMEOUT_S) -> float:
    """Seconds until ``check`` holds; raises with ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what}: not reached within {timeout_s:.0f} s")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


def _by_name(actors: dict) -> dict[str, dict]:
    """The live (or restarting) incarnation of each name; dead ones only when nothing else is left."""
    chosen: dict[str, dict] = {}
    for actor in actors["actors"]:
        if actor["name"] not in chosen or actor["state"] != "DEAD":
            chosen[actor["name"]] = actor
    return chosen


@asynccontextmanager
async def _ingestion(server_url: URL | str, pairs: tuple[str, ...], speed: float) -> AsyncIterator[tuple]:
    from bench.lib.harness import replay_process, scratch_database
    from cryptocast.exchange.server import ReplayConfig
    from cryptocast.sql.database import Database
    from cryptocast.sql.queries import submit_command

    async with scratch_database(server_url, f"ccgcsft_{os.getpid()}") as url:
        db = Database(url)
        try:
            for pair in pairs:
                await submit_command(db, "add_pair", pair)
            with replay_process(
                ReplayConfig(speed=speed, pairs=list(pairs), history_ms=HISTORY_MS)
            ) as replay:
                yield db, url, replay
        finally:
            await db.dispose()


async def run_experiment(
    server_url: URL | str,
    fault: str,
    pairs: tuple[str, ...] = PAIRS,
    speed: float = SPEED,
    down_s: float = DOWN_S,
) -> dict:
    """Ingest ``pairs`` on a Redis-backed head, inject ``fault`` (``gcs`` or ``head``), measure recovery."""
    from cryptocast.actors.check import completeness
    from cryptocast.actors.nodes import HOST_PREFIX
    from cryptocast.records import MINUTE_MS
    from cryptocast.sql.schema import symbols

    if fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}")
    result: dict = {"experiment": f"gcs_ft_{fault}", "pairs": list(pairs), "speed": speed, "down_s": down_s}
    async with _ingestion(server_url, pairs, speed) as (db, url, replay):

        async def last_candles() -> dict[str, int | None]:
            async with db.connect() as conn:
                rows = (await conn.execute(select(symbols.c.symbol, symbols.c.last_candle_time))).all()
            return {s: int(t.timestamp() * 1000) if t else None for s, t in rows}

        async def db_restarts() -> dict[str, int]:
            """The restarts the supervisor recorded per pair (actors it found dead or hung)."""
            async with db.connect() as conn:
                return dict((await conn.execute(select(symbols.c.symbol, symbols.c.restarts))).all())

        async def all_live() -> bool:
            async with db.connect() as conn:
                states = dict((await conn.execute(select(symbols.c.symbol, symbols.c.status))).all())
            return all(states.get(p) == "live" for p in pairs)

        async def caught_up(target_ms: int) -> bool:
            last = await last_candles()
            return all((last.get(p) or 0) >= target_ms for p in pairs)

        with local_cluster() as head:
            result["ray_start_s"] = round(await head.start(), 1)
            await head.driver(
                "start",
                {
                    "db_url": url.render_as_string(hide_password=False),
                    "rest_url": replay.rest_url,
                    "stream_url": replay.stream_url,
                },
            )
            result["first_live_s"] = round(await _until(all_live, "all pairs live"), 1)
            result["listening"] = head.listening()
            result["redis_keys"] = head.redis.keys()
            before = _by_name(await head.driver("actors"))
            restarts_before = await db_restarts()
            at_fault = await last_candles()
            fault_at = time.monotonic()

            if fault == "gcs":
                old_gcs = head.gcs_server().pid
                new_gcs = await head.restart_gcs(down_s)
                result["gcs_pids"] = [old_gcs, new_gcs]
                during = await last_candles()  # stored while the GCS was down
                result["minutes_stored_while_gcs_down"] = {
                    p: ((during[p] or 0) - (at_fault[p] or 0)) // MINUTE_MS for p in pairs
                }
            else:
                head.stop()
                result["stopped_processes_left"] = len(head.processes())
                await asyncio.sleep(down_s)
                result["ray_restart_s"] = round(await head.start(), 1)

            async def recovered() -> bool:
                try:
                    actors = _by_name(await head.driver("actors"))
                except (RuntimeError, TimeoutError):
                    return False
                hosts = [a for n, a in actors.items() if n.startswith(HOST_PREFIX) and a["state"] == "ALIVE"]
                supervisor = actors.get(SUPERVISOR, {}).get("state") == "ALIVE"
                return supervisor and bool(hosts) and await all_live()

            await _until(recovered, "supervisor and pair actors alive again")
            result["actors_alive_after_s"] = round(time.monotonic() - fault_at, 1)
            after = _by_name(await head.driver("actors"))
            result["hosts"] = {
                "before": sorted(n for n in before if n.startswith(HOST_PREFIX)),
                "alive_after": sorted(
                    n for n, a in after.items() if n.startswith(HOST_PREFIX) and a["state"] == "ALIVE"
                ),
            }
            target = replay.clock.now() // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS
            await _until(lambda: caught_up(target), "caught up with the exchange")
            result["caught_up_after_s"] = round(time.monotonic() - fault_at, 1)
            result["actors"] = {
                name: {
                    "same_actor": before[name]["id"] == after.get(name, {}).get("id"),
                    "same_process": before[name]["pid"] == after.get(name, {}).get("pid"),
                    "restarts": [before[name]["restarts"], after.get(name, {}).get("restarts")],
                    "state_after": after.get(name, {}).get("state"),
                }
                for name in sorted(before)
            }
            restarts_after = await db_restarts()
        report = {c.symbol: c for c in await completeness(db)}
    result["completeness"] = {
        p: {
            "expected": report[p].expected,
            "stored": report[p].stored,
            "missing": report[p].missing,
            "duplicates": report[p].duplicates,
            "pair_restarts_recorded": [restarts_before[p], restarts_after[p]],
        }
        for p in pairs
    }
    return result


def main() -> None:
    command = sys.argv[1]
    payload = json.loads(sys.stdin.read() or "{}")
    print(json.dumps(driver_main(command, payload)), flush=True)


if __name__ == "__main__":
    main()
