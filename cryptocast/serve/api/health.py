"""/health and /metrics: the system's state for probes, dashboards and Prometheus.

Apart from the resources because they answer about everything at once (the database, the
supervisor, the training scheduler, the exchange, every pair) and must answer whatever else is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import ray
from fastapi import APIRouter, Response
from ray import serve

from cryptocast.exchange.clock import WEEK_MS
from cryptocast.exchange.protocol import REPLAY_INFO_PATH, REPLAY_SPEED_HEADER
from cryptocast.serve import errors, metrics, reads, training
from cryptocast.serve.api import schemas
from cryptocast.serve.api.deps import Services
from cryptocast.serve.api.services import PROBE_TIMEOUT_S, ApiServices
from cryptocast.serve.config import pair_app_name
from cryptocast.settings import EXCHANGE_URLS
from cryptocast.sql import pairmetrics

log = logging.getLogger(__name__)

PUBLIC_REST_URLS = frozenset(rest for rest, _ in EXCHANGE_URLS.values())  # named in /health; others are not

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Database, supervisor, exchange and per-pair readiness (checked once a second)",
    responses={
        200: {"model": schemas.Health},
        503: {"model": schemas.Health, "description": "Degraded: the database cannot be reached"},
    },
)
async def health(services: Services) -> Response:
    status, body = await services.hot.health.get("health", lambda: _health(services))
    return Response(body, status, media_type="application/json")


async def _health(services: ApiServices) -> tuple[int, bytes]:
    """The checks behind /health, shared by every caller for HEALTH_TTL_S; where the database
    and the exchange are (user, host, port) goes to the server log, never into the answer."""
    db = services.db
    checks: dict[str, Any] = {}
    try:
        checks["database"] = {"ok": True, "version": await db.check()}
    except Exception as exc:
        log.warning("health: %s", exc)
        checks["database"] = {"ok": False, "error": errors.DATABASE_DOWN}
    checks["supervisor"] = await _supervisor()
    checks["training"] = await training.scheduler_view(db) if checks["database"]["ok"] else None
    checks["exchange"] = await _exchange_ping(services.options.rest_url)
    apps = {n: a.status for n, a in (await asyncio.to_thread(serve.status)).applications.items()}
    pairs = {}
    if checks["database"]["ok"]:
        for row in await reads.fetch(db, reads.PAIRS_SQL):
            state = apps.get(pair_app_name(row["symbol"]), "NOT_DEPLOYED")
            pairs[row["symbol"]] = {
                "status": row["status"],
                "serving": state,
                "ready": row["status"] == "live" and state == "RUNNING",
            }
    ok = checks["database"]["ok"]
    body = {
        "status": "ok" if ok else "degraded",
        "checked_at": datetime.now(UTC).isoformat(),
        **checks,
        "pairs": pairs,
    }
    return 200 if ok else 503, json.dumps(body, default=str).encode()


async def _supervisor() -> dict:
    try:
        actor = ray.get_actor("supervisor", namespace="cryptocast")
        snap: dict = await asyncio.wait_for(actor.snapshot.remote(), PROBE_TIMEOUT_S)
        return {"ok": True, "restarts_total": snap["restarts_total"], "pairs": len(snap["pairs"])}
    except ValueError:
        return {"ok": False, "error": "not running (ingestion is stopped)"}
    except Exception as exc:
        log.warning("health: the supervisor did not answer: %r", exc)
        return {"ok": False, "error": f"it did not answer ({type(exc).__name__})"}


async def _exchange_ping(configured_url: str) -> dict:
    rest_url = configured_url.rstrip("/")
    where = {"url": rest_url} if rest_url in PUBLIC_REST_URLS else {}  # a replay's or a proxy's stays here
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            reply = await client.get(rest_url + "/v3/ping")
            answer = {"ok": reply.status_code == 200, **where, "status": reply.status_code}
            if REPLAY_SPEED_HEADER in reply.headers:  # the exchange says it replays recordings
                answer["replay"] = await _replay_details(client, rest_url)
        return answer
    except httpx.HTTPError as exc:
        log.warning("health: the exchange at %s did not answer: %r", rest_url, exc)
        return {"ok": False, **where, "error": f"it did not answer ({type(exc).__name__})"}


async def _replay_details(client: httpx.AsyncClient, rest_url: str) -> dict:
    """Which recordings a replay exchange plays, shifted by how much, how fast (for the banner)."""
    info = (await client.get(rest_url.rstrip("/").removesuffix("/api") + REPLAY_INFO_PATH)).json()
    weeks = sorted({round(sym["shiftMs"] / WEEK_MS) for sym in info["symbols"].values()})
    return {
        "recordings": {name: sym["recording"] for name, sym in info["symbols"].items()},
        "shift": " / ".join(f"{w} weeks" for w in weeks),
        "speed": info["speed"],
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(services: Services) -> Response:
    pairs = await reads.fetch(services.db, reads.PAIRS_SQL)
    try:
        live = await asyncio.wait_for(services.live.stats.remote(), PROBE_TIMEOUT_S)
    except Exception:  # the live predictor restarting must not break scraping
        live = None
    scrape = metrics.Scrape(
        await services.exchange_now_ms(),
        pairs,
        await reads.fetch(services.db, pairmetrics.READ_SQL),
        live,
        await _alarms(services, [p["symbol"] for p in pairs]),
    )
    return Response(metrics.render(scrape), media_type=metrics.CONTENT_TYPE)


async def _alarms(services: ApiServices, pairs: list[str]) -> dict[str, bool]:
    """Per pair whose application runs and whose replica answers: whether it refused a model swap."""
    apps = {n: a.status for n, a in (await asyncio.to_thread(serve.status)).applications.items()}
    symbols = [s for s in pairs if apps.get(pair_app_name(s)) == "RUNNING"]
    answers = await asyncio.gather(*(services.call(s, "status") for s in symbols), return_exceptions=True)
    return {s: bool(a.get("alarm")) for s, a in zip(symbols, answers, strict=True) if isinstance(a, dict)}
