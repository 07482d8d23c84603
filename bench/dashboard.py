"""Dashboard latency in headless Chromium against the whole system on the replay exchange; JSON.

    .venv/bin/python bench/dashboard.py                  # speed 10 (a candle every 6 s), 10 updates
    .venv/bin/python bench/dashboard.py --speed 60 --updates 20

* ``first_chart_s``: page navigation → candles, forecast and both bands drawn.
* ``update_delay_s``: a candle closes on the replay's clock (its close time mapped to wall time)
  → that candle is drawn in the page, for each of ``--updates`` closes (the page polls every 1 s).
* ``load_avg``: the 1/5/15-minute load averages before and after, on ``cpus`` cores (the numbers
  mean little on a machine busy with other work).

Only the JSON goes to stdout: Ray prints its workers' logs on the driver's stdout, so they are
sent to stderr while the system runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.async_api import async_playwright

from cryptocast.records import MINUTE_MS
from cryptocast.settings import Settings
from cryptocast.sql import migrate
from cryptocast.sql.location import database_url
from tests.dashboard.browser import LAST_CANDLE_JS, TRACES_JS, launch
from tests.dashboard.system import whole_system

FIRST_CHART = {"1m candles", "forecast", "80 % band", "95 % band"}
SAMPLE_S = 0.02
TIMEOUT_S = 120.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(url, speed: float, updates: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cryptocast-bench-chromium-") as profile:
        async with whole_system(url, speed) as system, async_playwright() as playwright:
            context = await launch(playwright, profile)
            page = await context.new_page()
            t0 = time.monotonic()
            await page.goto(system.dashboard_url)
            while not {name for name, _, n in await page.evaluate(TRACES_JS) if n} >= FIRST_CHART:
                assert time.monotonic() - t0 < TIMEOUT_S, "no chart"
                await asyncio.sleep(SAMPLE_S)
            first_chart_s = time.monotonic() - t0
            delays, seen = [], await page.evaluate(LAST_CANDLE_JS)
            while len(delays) < updates:
                shown = await page.evaluate(LAST_CANDLE_JS)
                if shown != seen:
                    now_ms = time.time() * 1000
                    open_ms = datetime.fromisoformat(shown).replace(tzinfo=UTC).timestamp() * 1000
                    delays.append((now_ms - system.replay.clock.wall_at(int(open_ms) + MINUTE_MS)) / 1000)
                    seen = shown
                await asyncio.sleep(SAMPLE_S)
            await context.close()
    return {
        "speed": speed,
        "first_chart_s": round(first_chart_s, 3),
        "updates": len(delays),
        "update_delay_s": {
            "p50": round(_percentile(delays, 0.5), 3),
            "p90": round(_percentile(delays, 0.9), 3),
            "max": round(max(delays), 3),
            "all": [round(d, 3) for d in delays],
        },
        "poll_interval_s": 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--speed", type=float, default=10.0, help="replay speed")
    parser.add_argument("--updates", type=int, default=10, help="candle closes to time")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="cryptocast-bench-") as tmp,
        database_url(Settings(data_dir=tmp)) as url,
    ):
        migrate.upgrade(url)
        before = os.getloadavg()
        with redirect_stdout(sys.stderr):
            result = asyncio.run(measure(url, args.speed, args.updates))
        load = {"before": [round(v, 2) for v in before], "after": [round(v, 2) for v in os.getloadavg()]}
        print(json.dumps(result | {"load_avg": load, "cpus": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
