"""What runs in the background of every run mode: ingestion's supervisor and the training scheduler.

``cryptocast up`` and the Kubernetes entrypoint both call :func:`start_background`, so whatever one
runs the other runs too (``cryptocast ingest`` asks for ingestion alone). Both actors are detached
and named: calling this again, or after a Ray head restart with GCS fault tolerance, finds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ray

from cryptocast.settings import Settings


@dataclass(frozen=True, slots=True)
class Background:
    supervisor: ray.actor.ActorHandle
    scheduler: ray.actor.ActorHandle | None  # None: ingestion only


def start_background(
    settings: Settings, database_url: str, training: bool = True, tune_storage: Path | None = None
) -> Background:
    """Start (or find) the supervisor and, with ``training``, the training scheduler, on the joined Ray."""
    from cryptocast.actors.supervisor import start_supervisor

    supervisor = start_supervisor(
        database_url,
        settings.rest_url,
        settings.stream_url,
        settings.lookback_ms,
        weight_limit=settings.rest_weight_per_minute,
    )
    if not training:
        return Background(supervisor, None)
    from cryptocast.tune.service import TrainingConfig, start_training

    return Background(
        supervisor, start_training(TrainingConfig.from_settings(settings, database_url, tune_storage))
    )


def stop_background(background: Background) -> None:
    """Stop gracefully: a training in progress goes back to the queue, pairs flush and close."""
    if background.scheduler is not None:
        from cryptocast.tune.service import stop_training

        stop_training()
    ray.get(background.supervisor.shutdown.remote())
    ray.kill(background.supervisor, no_restart=True)
