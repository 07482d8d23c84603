"""Backfill throughput, replay REST → python-binance → PostgreSQL, free and throttled; prints JSON.

    .venv/bin/python bench/backfill.py [--pairs BTCUSDT ETHBTC] [--throttled-clones 11] [--no-throttled]

Uses ``CRYPTOCAST_DATABASE_URL``'s server (or the embedded one) for a scratch database it drops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench.lib

from bench.lib.ingest import run_backfill_bench
from cryptocast.settings import get_settings
from cryptocast.sql.location import database_url

# BTCUSDT and 11 clones: 540 pages at 270 per minute, two budget minutes and more of steady state.
THROTTLED_CLONES = 11


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", nargs="*", help="recordings to backfill (default: all bundled)")
    parser.add_argument("--throttled-clones", type=int, default=THROTTLED_CLONES)
    parser.add_argument("--no-throttled", action="store_true", help="only the free run")
    args = parser.parse_args()
    with database_url(get_settings()) as url:
        result = asyncio.run(run_backfill_bench(url, args.pairs, args.throttled_clones, args.no_throttled))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
