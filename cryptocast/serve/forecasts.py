"""What one pair serves: its models loaded by id, and forecasts turned into ``predictions`` rows.

Kept apart from the Serve deployment so the swap rules (a model that fails to load never replaces
the one serving) are plain code with plain tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pandas as pd

from cryptocast.records import MINUTE_MS, ms_to_dt
from cryptocast.sql.database import Database
from cryptocast.tune import registry
from cryptocast.tune.candles import OHLCV, Candles, from_database, from_frame
from cryptocast.tune.predictor import (
    LSTM,
    Forecast,
    HorizonForecast,
    LstmPredictor,
    PersistencePredictor,
    Predictor,
    ServedPredictor,
)

WINDOW_SLACK_MINUTES = 5  # read a little more than the window, so a late minute does not starve it


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: int
    kind: str
    version: int
    trained_at: str
    served_horizons: list[int]

    @classmethod
    def of(cls, record: registry.ModelRecord) -> ModelInfo:
        return cls(
            record.id, record.kind, record.version, record.trained_at.isoformat(), record.served_horizons
        )


@dataclass(slots=True)
class ModelSet:
    """The served combination (persistence + LSTM champion) and the shadow, with their rows."""

    served: ServedPredictor | None = None
    shadow: Predictor | None = None
    persistence: ModelInfo | None = None
    lstm: ModelInfo | None = None
    shadow_info: ModelInfo | None = None
    wanted: dict = field(default_factory=dict)  # the user_config these were loaded from

    @property
    def window_minutes(self) -> int:
        sizes = [p.window_minutes for p in (self.served, self.shadow) if p is not None]
        return max(sizes, default=0)

    def describe(self) -> dict:
        return {
            "persistence": _as_dict(self.persistence),
            "lstm": _as_dict(self.lstm),
            "shadow": _as_dict(self.shadow_info),
        }


def _as_dict(info: ModelInfo | None) -> dict | None:
    return (
        None
        if info is None
        else {
            "id": info.id,
            "kind": info.kind,
            "version": info.version,
            "trained_at": info.trained_at,
            "served_horizons": info.served_horizons,
        }
    )


class NoModel(LookupError):
    """The pair has no persistence champion yet (it is still collecting its first hours)."""


def _record(by_id: dict[int, registry.ModelRecord], model_id: int | None) -> registry.ModelRecord | None:
    return by_id.get(model_id) if model_id is not None else None


async def load_models(db: Database, symbol_id: int, wanted: dict[str, int | None]) -> ModelSet:
    """Load the models named by id in ``wanted``; raises :class:`registry.CorruptArtifact` on a bad file."""
    by_id = {r.id: r for r in await registry.records(db, symbol_id)}
    missing = [mid for mid in wanted.values() if mid is not None and mid not in by_id]
    if missing:
        raise registry.NoChampion(f"model ids {missing} are not registered for pair {symbol_id}")
    models = ModelSet(wanted=dict(wanted))
    persistence_id = wanted.get("persistence")
    if persistence_id is None:
        return models
    base = by_id[persistence_id]
    lstm = _record(by_id, wanted.get("lstm"))
    lstm_model = registry.load(lstm) if lstm is not None else None
    models.served = ServedPredictor(
        registry.load_as(PersistencePredictor, base),
        lstm_model if isinstance(lstm_model, LstmPredictor) else None,
        set(lstm.served_horizons) if lstm is not None else set(),
    )
    models.persistence = ModelInfo.of(base)
    models.lstm = ModelInfo.of(lstm) if lstm is not None else None
    shadow = _record(by_id, wanted.get("shadow"))
    if shadow is not None:
        models.shadow = registry.load(shadow)
        models.shadow_info = ModelInfo.of(shadow)
    return models


async def window_until(db: Database, symbol_id: int, minutes: int, origin_ms: int | None) -> Candles:
    """The ``minutes`` candles ending at ``origin_ms`` (the newest stored minute when None)."""
    if origin_ms is None:
        async with db.raw() as conn:
            newest = await conn.fetchval(
                "SELECT max(open_time) FROM price_history WHERE symbol_id = $1", symbol_id
            )
        if newest is None:
            return from_frame(pd.DataFrame({"open_time_ms": [], **{c: [] for c in OHLCV}}))
        end = newest + timedelta(milliseconds=MINUTE_MS)
    else:
        end = ms_to_dt(origin_ms + MINUTE_MS)
    start = end - timedelta(minutes=minutes + WINDOW_SLACK_MINUTES)
    return await from_database(db, symbol_id, start, end)


def candles_from_request(columns: dict) -> Candles:
    """A caller's window, as columns (``open_time_ms`` and OHLCV arrays), as :class:`Candles`."""
    return from_frame(pd.DataFrame(columns))


def forecast_json(forecast: Forecast) -> dict:
    return {
        "origin_time": ms_to_dt(forecast.origin_ms).isoformat(),
        "origin_ms": forecast.origin_ms,
        "close": forecast.close,
        "horizons": [
            {
                "horizon": h.horizon,
                "target_time": ms_to_dt(forecast.origin_ms + h.horizon * MINUTE_MS).isoformat(),
                "predicted": h.point,
                "lower_80": h.lower_80,
                "upper_80": h.upper_80,
                "lower_95": h.lower_95,
                "upper_95": h.upper_95,
                "source": h.source,
            }
            for h in forecast.horizons
        ],
    }


def prediction_rows(models: ModelSet, served: Forecast, shadow: Forecast | None) -> list[dict]:
    """``predictions`` rows: the served forecast under the model that made each horizon, then the shadow."""
    rows = []
    for h in served.horizons:
        owner = models.lstm if h.source == LSTM else models.persistence
        assert owner is not None  # a served forecast comes from loaded models
        rows.append(_row(owner.id, served.origin_ms, h, served=True))
    if shadow is not None and models.shadow_info is not None:
        rows += [_row(models.shadow_info.id, shadow.origin_ms, h, served=False) for h in shadow.horizons]
    return rows


def _row(model_id: int, origin_ms: int, h: HorizonForecast, served: bool) -> dict:
    return {
        "model_id": model_id,
        "origin_ms": origin_ms,
        "horizon": h.horizon,
        "predicted": h.point,
        "lower_80": h.lower_80,
        "upper_80": h.upper_80,
        "lower_95": h.lower_95,
        "upper_95": h.upper_95,
        "served": served,
    }
