"""The rendered serveConfigV2 on a real (local, loopback) Ray: it serves, and a new pair is added in place.

KubeRay and ``serve deploy`` both hand the config to the dashboard's REST endpoint
(``PUT /api/serve/applications/``), whose handler validates it as a ``ServeDeploySchema``, starts
Serve with the config's HTTP options and calls ``deploy_apps``. The project's Ray runs without the
dashboard, so :func:`serve_deploy` makes those same calls directly: the path after the HTTP hop.

The config is the cluster's own (``render`` of the ``local`` overlay, generated from the symbols
table as ``cryptocast k8s keep`` does), with the ConfigMap entries a single machine needs set
through ``render``'s overrides: loopback, a free port, a scratch model store, the replay exchange.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from ray.serve._private.api import serve_start
from ray.serve.context import _get_global_client
from ray.serve.schema import ServeDeploySchema
from sqlalchemy.engine import URL

from cryptocast.exchange.server import ReplayConfig, ReplayServer
from cryptocast.k8s.render import RAY_SERVICE, find, render
from cryptocast.k8s.serveconfig import cluster_options
from cryptocast.serve.config import ROUTER_APP, build_config, pair_app_name, served_pairs
from cryptocast.serve.deploy import wait_running
from cryptocast.settings import LOOPBACK, Settings
from cryptocast.sql.database import Database
from cryptocast.sql.queries import add_symbol
from tests.helpers import free_port
from tests.k8s.manifests import K8S

pytestmark = [pytest.mark.slow, pytest.mark.embedded_only]

FIRST = ["BTCUSDT", "ETHUSDT"]
ADDED = "ETHBTC"
RAY_CPUS = 2
READY_TIMEOUT_S = 300.0  # replicas of three applications start on two shared cores
HTTP_TIMEOUT_S = 30.0


def serve_deploy(config: dict) -> None:
    """What the dashboard does for ``serve deploy`` / KubeRay: validate, start Serve, deploy the apps."""
    schema = ServeDeploySchema.model_validate(config)
    serve_start(
        http_options=schema.http_options.model_dump(),
        proxy_location=schema.proxy_location,
        grpc_options=schema.grpc_options.model_dump(),
        global_logging_config=schema.logging_config,
    )
    _get_global_client().deploy_apps(schema)


async def rendered_config(db: Database, overrides: dict[str, str]) -> dict:
    """serveConfigV2 of the ``local`` overlay, generated from the symbols table, as a dict."""
    entries = await served_pairs(db)

    def config_for(settings: Settings) -> dict:
        return build_config(entries, cluster_options(settings))

    docs = render("local", config_for, K8S, overrides)
    return yaml.safe_load(find(docs, "RayService", RAY_SERVICE)["spec"]["serveConfigV2"])


def replicas() -> dict[str, set[tuple]]:
    """Application → (replica id, actor id, pid, start time) of every replica, from the controller."""
    details = _get_global_client().get_serve_details()
    return {
        name: {
            (r["replica_id"], r["actor_id"], r["pid"], r["start_time_s"])
            for deployment in app["deployments"].values()
            for r in deployment["replicas"]
        }
        for name, app in details["applications"].items()
    }


@pytest.fixture
def local_ray(db_url: URL, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Ray on loopback whose workers find the database as the cluster's do (``CRYPTOCAST_DATABASE_URL``)."""
    from ray import serve

    from cryptocast.actors.ray_runtime import start_ray, stop_ray

    monkeypatch.setenv("CRYPTOCAST_DATABASE_URL", db_url.render_as_string(hide_password=False))
    start_ray(num_cpus=RAY_CPUS, namespace="test-serve-deploy")
    try:
        yield
    finally:
        serve.shutdown()
        stop_ray()


async def test_rendered_config_serves_and_a_new_pair_leaves_the_others_running(
    local_ray: None, db_url: URL, tmp_path: Path
) -> None:
    db = Database(db_url)
    port = free_port()
    async with ReplayServer(ReplayConfig(speed=60.0, pairs=[*FIRST, ADDED], history_ms=3_600_000)) as replay:
        overrides = {
            "CRYPTOCAST_BIND_HOST": LOOPBACK,
            "CRYPTOCAST_API_PORT": str(port),
            "CRYPTOCAST_MODEL_STORE_URI": str(tmp_path / "models"),
            "CRYPTOCAST_EXCHANGE_REST_URL": replay.rest_url,
            "CRYPTOCAST_EXCHANGE_STREAM_URL": replay.stream_url,
        }
        for symbol in FIRST:
            await add_symbol(db, symbol, symbol[:-4], symbol[-4:])
        first = await rendered_config(db, overrides)
        assert [a["name"] for a in first["applications"]] == [ROUTER_APP] + [pair_app_name(s) for s in FIRST]
        assert "database_url" not in str(first)  # replicas take it from the environment, as in the cluster

        serve_deploy(first)
        await wait_running([a["name"] for a in first["applications"]], READY_TIMEOUT_S)
        async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}", timeout=HTTP_TIMEOUT_S) as http:
            health = await http.get("/health")
            assert health.status_code == 200, health.text
            body = health.json()
            assert body["database"]["ok"] and body["exchange"]["ok"], body
            assert {s: p["serving"] for s, p in body["pairs"].items()} == dict.fromkeys(FIRST, "RUNNING")
            before = replicas()

            await add_symbol(db, ADDED, ADDED[:-3], ADDED[-3:])
            second = await rendered_config(db, overrides)
            assert len(second["applications"]) == len(first["applications"]) + 1
            serve_deploy(second)
            await wait_running([a["name"] for a in second["applications"]], READY_TIMEOUT_S)
            after = replicas()

            health = await http.get("/health")
            assert health.status_code == 200, health.text
            assert health.json()["pairs"][ADDED]["serving"] == "RUNNING"
    await db.dispose()

    kept = [ROUTER_APP] + [pair_app_name(s) for s in FIRST]
    assert all(before[name] for name in kept), before
    # the same replicas (ids, actors, processes, start times): nothing was restarted
    assert {name: after[name] for name in kept} == {name: before[name] for name in kept}
    assert len(after[pair_app_name(ADDED)]) == 1
    print(f"replicas kept across the new pair: {sum(len(before[n]) for n in kept)}")
