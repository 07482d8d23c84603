"""The ingestion cluster's entrypoint, run by the Ray head's command next to ``ray start``.

It (re)creates the detached supervisor and training scheduler through
:func:`cryptocast.system.start_background`, the same function ``cryptocast up`` runs
(``get_if_exists``: after a head restart, GCS fault tolerance brings them back and this only finds
them; the scheduler drives itself), and keeps the serving RayService's serveConfigV2 equal to the
config generated from the database: a pair added to ``symbols`` appears in the declared state and
KubeRay applies it in place.

It refuses to run beside a head without Ray token authentication: the background work it starts
holds the database URL, and on a cluster without the token anyone who reaches a Ray port could
read it or run code beside it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from cryptocast.k8s.kubeapi import RayServiceRef, declared_config, in_cluster_client, patch_config
from cryptocast.k8s.serveconfig import cluster_options
from cryptocast.serve.config import generate
from cryptocast.settings import Settings
from cryptocast.sql.database import Database
from cryptocast.system import start_background

log = logging.getLogger(__name__)

CONFIG_SYNC_S = 10.0
HEAD_ADDRESS = "auto"  # the head this process runs beside
AUTH_MODE_ENV, AUTH_TOKEN_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"


def require_token_auth(env: Mapping[str, str] = os.environ) -> None:
    """Raise unless this process, and so the head it runs beside, has Ray token authentication."""
    if env.get(AUTH_MODE_ENV, "").lower() != "token" or not env.get(AUTH_TOKEN_ENV, "").strip():
        raise RuntimeError(
            f"the ingestion head runs without Ray token authentication: set {AUTH_MODE_ENV}=token and "
            f"{AUTH_TOKEN_ENV} from the cryptocast-ray-ingest-token Secret (k8s/base/raycluster-ingest.yaml)"
        )


async def sync_serve_config(settings: Settings, db: Database, ref: RayServiceRef) -> None:
    """Patch serveConfigV2 whenever the config generated from the database differs from it."""
    options = cluster_options(settings)
    async with in_cluster_client() as client:
        while True:
            config = await generate(db, options)
            if await declared_config(client, ref) != config:
                await patch_config(client, ref, config)
                log.info("serveConfigV2 patched: %d applications", len(config["applications"]))
            await asyncio.sleep(CONFIG_SYNC_S)


async def keep(settings: Settings, tune_storage: Path, ref: RayServiceRef) -> None:
    """Run until an error; the head command restarts this process, which picks everything up again."""
    from cryptocast.actors.ray_runtime import start_ray

    require_token_auth()
    if settings.database_url is None:
        raise RuntimeError("CRYPTOCAST_DATABASE_URL is required in the cluster")
    db_url = settings.database_url.get_secret_value()
    start_ray(address=settings.ray_address or HEAD_ADDRESS)
    start_background(settings, db_url, training=True, tune_storage=tune_storage)
    db = Database(db_url)
    try:
        await sync_serve_config(settings, db, ref)
    finally:
        await db.dispose()
