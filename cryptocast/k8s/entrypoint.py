"""The ingestion cluster's entrypoint, run by the Ray head's command next to ``ray start``.

It (re)creates the detached supervisor and training scheduler (``get_if_exists``: after a head
restart, GCS fault tolerance brings them back and this only finds them), drives the scheduler's
ticks (one driver per head, so there is never a second training loop), and keeps the serving
RayService's serveConfigV2 equal to the config generated from the database: a pair added to
``symbols`` appears in the declared state and KubeRay applies it in place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import ray

from cryptocast.k8s.kubeapi import RayServiceRef, declared_config, in_cluster_client, patch_config
from cryptocast.k8s.serveconfig import cluster_options
from cryptocast.serve.config import generate
from cryptocast.settings import Settings
from cryptocast.sql.database import Database

log = logging.getLogger(__name__)

SCHEDULER_NAME = "training-scheduler"
CONFIG_SYNC_S = 10.0
TICK_S = 30.0  # the scheduler's own poll interval (POLL_SECONDS)
DAY_MS = 86_400_000
HEAD_ADDRESS = "auto"  # the head this process runs beside


def wall_clock_ms() -> int:
    """The scheduler's clock in the cluster: real time (the exchange runs on it)."""
    return int(time.time() * 1000)


def start_actors(settings: Settings, db_url: str, tune_storage: str) -> ray.actor.ActorHandle:
    """Supervisor and scheduler, both detached and named; returns the scheduler."""
    from cryptocast.actors.cli import LOOKBACK_DAYS
    from cryptocast.actors.pair import NAMESPACE
    from cryptocast.actors.supervisor import start_supervisor
    from cryptocast.tune.scheduler import scheduler_actor

    start_supervisor(db_url, settings.rest_url, settings.stream_url, LOOKBACK_DAYS * DAY_MS)
    return (
        scheduler_actor()
        .options(
            name=SCHEDULER_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, max_restarts=-1
        )
        .remote(db_url, settings.model_store, tune_storage, wall_clock_ms)
    )


async def drive_training(scheduler: ray.actor.ActorHandle) -> None:
    """Tick the scheduler forever; a tick trains whatever is due (daily slot, new pair, command)."""
    while True:
        jobs = await scheduler.tick.remote()
        for job in jobs:
            log.info("trained %s (%s)", job.symbol, job.reason)
        await asyncio.sleep(TICK_S)


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

    if settings.database_url is None:
        raise RuntimeError("CRYPTOCAST_DATABASE_URL is required in the cluster")
    db_url = settings.database_url.get_secret_value()
    start_ray(address=settings.ray_address or HEAD_ADDRESS)
    scheduler = start_actors(settings, db_url, str(tune_storage))
    db = Database(db_url)
    try:
        await asyncio.gather(drive_training(scheduler), sync_serve_config(settings, db, ref))
    finally:
        await db.dispose()
