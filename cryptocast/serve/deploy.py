"""Applying the generated config with Serve's declarative API, and starting/stopping Serve.

``serve.run`` of a builder restarts every deployment on each call, so it is never used: configs go
to the controller's ``apply_config`` (what ``serve deploy`` and KubeRay use), which touches only the
applications whose entry changed. Applications that are not ours (for example the benchmark's
no-op floor) are carried over from what is deployed, so regenerating never removes them.
"""

from __future__ import annotations

import asyncio
import logging

import ray
from ray import serve
from ray.serve._private.api import serve_start
from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE
from ray.serve.schema import ServeDeploySchema

from cryptocast.serve.config import PAIR_PREFIX, ROUTER_APP, ServeOptions, generate
from cryptocast.settings import Settings
from cryptocast.sql.database import Database

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
DIRECT_INGRESS_ENV = "RAY_SERVE_ENABLE_DIRECT_INGRESS"
POLL_S = 0.2


def ours(name: str) -> bool:
    return name == ROUTER_APP or name.startswith(PAIR_PREFIX)


def start_controller(host: str, port: int) -> None:
    """Start Serve (controller and HTTP proxy on ``host:port``) if it is not running yet."""
    serve_start(http_options={"host": host, "port": port})


def _controller() -> ray.actor.ActorHandle:
    return ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)


def deployed_applications() -> dict[str, dict]:
    """Name → deployed application config, as the controller reports it."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    assert client is not None  # it raises instead of returning None while no controller runs
    return {
        name: app["deployed_app_config"]
        for name, app in client.get_serve_details().get("applications", {}).items()
        if app.get("deployed_app_config")
    }


def with_foreign_apps(config: dict, deployed: dict[str, dict]) -> dict:
    """``config`` plus every deployed application that the generator does not own."""
    names = {a["name"] for a in config["applications"]}
    extra = [app for name, app in deployed.items() if not ours(name) and name not in names]
    return config | {"applications": config["applications"] + extra}


async def apply_config(config: dict) -> None:
    """Hand a full config to the controller (returns once accepted; replicas start afterwards)."""
    merged = with_foreign_apps(config, await asyncio.to_thread(deployed_applications))
    schema = ServeDeploySchema.model_validate(merged)
    await _controller().apply_config.remote(schema)


async def wait_running(names: list[str], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until every named application is RUNNING; raises with the statuses otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        statuses = {n: a.status for n, a in (await asyncio.to_thread(serve.status)).applications.items()}
        if all(statuses.get(n) == "RUNNING" for n in names):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"Serve applications not running after {timeout_s:.0f} s: {statuses}")
        await asyncio.sleep(POLL_S)


async def deploy(db: Database, options: ServeOptions, wait: bool = True) -> dict:
    """Start Serve when needed, apply the config generated from the database, wait for it."""
    await asyncio.to_thread(start_controller, options.host, options.port)
    config = await generate(db, options)
    await apply_config(config)
    if wait:
        await wait_running([a["name"] for a in config["applications"]])
    return config


def api_url(options: ServeOptions) -> str:
    return f"http://{options.host}:{options.port}"


async def direct_ingress_url(app_name: str, proxy_port: int, timeout_s: float = READY_TIMEOUT_S) -> str:
    """The URL of an application's ingress replica itself, with Serve's direct ingress on.

    ``RAY_SERVE_ENABLE_DIRECT_INGRESS=1`` (in the environment Ray's processes start with) makes each
    ingress replica serve HTTP on its own port (from 30000, on the proxy's host, so loopback here),
    skipping the proxy hop. The port is allocated at replica start, so it is asked of the controller;
    until the replica runs the controller names the proxy instead, which is waited out.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        groups = await _controller().get_target_groups.remote(app_name)
        for group in groups:
            direct = [t for t in group.targets if t.port != proxy_port]
            if group.protocol == "HTTP" and group.app_name == app_name and direct:  # a str enum
                return f"http://{direct[0].ip}:{direct[0].port}"
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(
                f"no direct-ingress port for {app_name!r} after {timeout_s:.0f} s (is it enabled?)"
            )
        await asyncio.sleep(POLL_S)


async def start_serving(settings: Settings, db_url: str) -> str:
    """Serve the API and every pair on the running Ray (started with ``start_ray``); returns the URL.

    Awaited from the caller's event loop (``cryptocast up`` runs inside one).
    """
    options = ServeOptions.from_settings(settings, db_url)
    db = Database(db_url)
    try:
        await deploy(db, options)
    finally:
        await db.dispose()
    return api_url(options)


def stop_serving() -> None:
    """Delete every application and stop the HTTP proxy (Ray itself keeps running)."""
    if ray.is_initialized():
        serve.shutdown()
