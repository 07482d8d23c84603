"""How the API's answers are shaped, shared by the resources: rows as JSON, paging, clock fields.

Kept apart from the routes so every resource writes times, backfill progress, predictions and the
clock-driven part of ``freshness`` alike, and so errors that depend only on a row (a malformed
symbol, a pair still backfilling) read the same wherever they are raised.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import Request, Response

from cryptocast.actors.commands import PairRejected, normalise_symbol
from cryptocast.serve.encoded import encode, respond
from cryptocast.serve.errors import ApiError

BACKFILLING = ("new", "backfilling")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def json_answer(body: dict, request: Request | None = None) -> Response:
    """JSON with an ETag; a matching ``If-None-Match`` gets 304 without the body."""
    return respond(encode(body), request)


def clock_fields(fresh: dict, now_ms: float | None) -> dict:
    """The clock-driven part of ``freshness``: data lag and exchange time (None when unknown), and
    when the answer was made."""
    last = fresh["last_candle_time"]
    lag = None
    if last is not None and now_ms is not None:
        lag = round(max(0.0, now_ms / 1000 - (datetime.fromisoformat(last).timestamp() + 60)), 3)
    return {
        "data_lag_s": lag,
        "exchange_time": iso(datetime.fromtimestamp(now_ms / 1000, UTC)) if now_ms is not None else None,
        "as_of": datetime.now(UTC).isoformat(),
    }


def backfill(row: dict) -> dict:
    total = row["backfill_total"]
    return {
        "done": row["backfill_done"],
        "total": total,
        "percent": round(100.0 * row["backfill_done"] / total, 2) if total else None,
        "eta_s": row["backfill_eta_s"],
    }


def conflict_if_backfilling(row: dict) -> None:
    """409 with the progress while the pair backfills: its stored candles are not whole yet."""
    if row["status"] in BACKFILLING:
        b = backfill(row)
        eta = f", about {b['eta_s']:.0f} s left" if b["eta_s"] is not None else ""
        pct = f"{b['percent']:.1f} % done" if b["percent"] is not None else "starting"
        raise ApiError(409, f"{row['symbol']} is still backfilling ({pct}{eta})", "backfilling", progress=b)


def symbol(text: str) -> str:
    """The normalised symbol, or 422 saying what is wrong with it."""
    try:
        return normalise_symbol(text)
    except PairRejected as exc:
        raise ApiError(422, str(exc)) from None


def completeness(counts: dict) -> float | None:
    if not counts["stored"]:
        return None
    expected = int((counts["last"] - counts["first"]).total_seconds() // 60) + 1 - counts["holes"]
    return round(100.0 * counts["stored"] / expected, 3) if expected > 0 else 100.0


def next_start(rows: list[dict], key: str, limit: int) -> str | None:
    """Where the next page starts, when this one was cut by ``limit``."""
    return (rows[-1][key] + timedelta(microseconds=1)).isoformat() if len(rows) == limit else None


def prediction(r: dict) -> dict:
    actual = r["actual"]
    return {
        "origin_time": r["origin_time"].isoformat(),
        "target_time": r["target_time"].isoformat(),
        "horizon": r["horizon"],
        "predicted": r["predicted"],
        "lower_80": r["lower_80"],
        "upper_80": r["upper_80"],
        "lower_95": r["lower_95"],
        "upper_95": r["upper_95"],
        "actual": actual,
        "error": None if actual is None else actual - r["predicted"],
        "model": {"kind": r["kind"], "version": r["version"]},
        "served": r["served"],
        "late": r["late"],
        "made_at": r["made_at"].isoformat(),
    }
