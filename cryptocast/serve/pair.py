"""The per-pair model deployment: one small replica that holds a pair's models and forecasts.

Models are chosen by ``user_config`` (their registry ids), so a new champion reconfigures the
running replica in place. A model that cannot be loaded (missing file, checksum mismatch) never
replaces the one serving: the replica keeps its previous models and raises an alarm that the API
shows on the pair. Forecasts run the LSTM in NumPy (no TensorFlow in the replica: a TensorFlow
process costs ~0.65 GB, twenty of them would not fit beside ingestion and training).
"""

from __future__ import annotations

import logging
import time

from ray import serve

from cryptocast.logs import setup_worker_logging
from cryptocast.serve.config import PAIR_CPUS, PAIR_DEPLOYMENT
from cryptocast.serve.forecasts import (
    ModelSet,
    candles_from_request,
    forecast_json,
    load_models,
    prediction_rows,
    window_until,
)
from cryptocast.serve.replicadb import replica_database
from cryptocast.tune.predictor import NotEnoughHistory

log = logging.getLogger(__name__)

MAX_BATCH = 16
BATCH_WAIT_S = 0.0  # no waiting: requests that queued while the last batch ran form the next one
MAX_ONGOING = 64
LOAD_ERRORS = (LookupError, RuntimeError, OSError, ValueError, KeyError)  # CorruptArtifact is a RuntimeError


def _problem(kind: str, message: str) -> dict:
    """Errors travel back as values: the router turns ``kind`` into an HTTP status."""
    return {"error": kind, "message": message}


@serve.deployment(
    name=PAIR_DEPLOYMENT, ray_actor_options={"num_cpus": PAIR_CPUS}, max_ongoing_requests=MAX_ONGOING
)
class PairModel:
    def __init__(
        self, symbol: str, symbol_id: int, model_store: str, database_url_file: str | None = None
    ) -> None:
        setup_worker_logging()
        self.symbol, self.symbol_id, self.model_store = symbol, symbol_id, model_store
        self.db = replica_database(database_url_file)
        self.models = ModelSet()
        self.alarm: dict | None = None
        self.loaded_at: float | None = None

    async def reconfigure(self, wanted: dict) -> None:
        """Load the models named by ``wanted``; on any failure keep serving the previous ones."""
        if wanted == self.models.wanted:
            return
        try:
            models = await load_models(self.db, self.symbol_id, wanted)
        except LOAD_ERRORS as exc:
            self.alarm = {
                "message": f"{type(exc).__name__}: {exc}; still serving {self.models.describe()}",
                "wanted": wanted,
                "since": time.time(),
            }
            log.error("%s: model swap refused, previous models keep serving: %s", self.symbol, exc)
            return
        self.models, self.alarm, self.loaded_at = models, None, time.time()
        log.info("%s: serving %s", self.symbol, models.describe())

    async def status(self) -> dict:
        return {
            "symbol": self.symbol,
            "models": self.models.describe(),
            "window_minutes": self.models.window_minutes,
            "alarm": self.alarm,
            "loaded_at": self.loaded_at,
        }

    async def forecast_at(self, origin_ms: int | None = None) -> dict:
        """Served and shadow forecasts from stored candles ending at ``origin_ms`` (newest if None)."""
        return await self._batched((origin_ms, None, True))

    async def predict(self, candles: dict | None = None) -> dict:
        """The served forecast from the caller's window, or from the newest stored candles."""
        return await self._batched((None, candles, False))

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _batched(self, requests: list[tuple[int | None, dict | None, bool]]) -> list[dict]:
        models = self.models  # one model set for the whole batch, even if a swap lands meanwhile
        return [await self._one(models, *request) for request in requests]

    async def _one(self, models: ModelSet, origin_ms: int | None, window: dict | None, store: bool) -> dict:
        if models.served is None:
            return _problem(
                "no_model", f"{self.symbol} has no model yet: it needs 240 minutes of candles first"
            )
        try:
            if window is not None:
                candles = candles_from_request(window)
            else:
                candles = await window_until(self.db, self.symbol_id, models.window_minutes, origin_ms)
            served = models.served.predict(candles)
            shadow = None
            if store and models.shadow is not None:
                try:
                    shadow = models.shadow.predict(candles)
                except NotEnoughHistory:
                    shadow = None  # the shadow's window may be longer; the served forecast still stands
        except NotEnoughHistory as exc:
            return _problem("not_enough_history", f"{self.symbol}: {exc}")
        except (ValueError, KeyError, FloatingPointError) as exc:
            if window is None:
                raise
            return _problem("invalid_window", f"cannot forecast from the window given: {exc}")
        answer: dict[str, object] = {
            "forecast": forecast_json(served),
            "models": models.describe(),
            "alarm": self.alarm,
        }
        if store:
            answer["rows"] = prediction_rows(models, served, shadow)
        return answer


def app(args: dict) -> serve.Application:
    """Application builder (``import_path`` of every ``pair_<SYMBOL>`` application)."""
    return PairModel.bind(  # type: ignore[attr-defined]  # mypy keeps a decorated class's type: @serve.deployment made it a Deployment
        args["symbol"], int(args["symbol_id"]), args["model_store"], args.get("database_url_file")
    )
