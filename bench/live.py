"""Live latency (exchange close event → row committed) and the ingest side's memory, on Ray; JSON.

    .venv/bin/python bench/live.py                      # 1 pair at 600×, then 20 pairs at 60×
    .venv/bin/python bench/live.py --pairs 20 --speed 60 --candles 1000

1,000 candles of one pair at 60× take 17 minutes of wall time, so the single pair runs at 600×
by default (a candle every 100 ms); 20 pairs at 60× close 1,000 candles in under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench.lib

from bench.lib.ingest import run_live_bench
from cryptocast.actors.pair import PAIRS_PER_ACTOR
from cryptocast.settings import get_settings
from cryptocast.sql.location import database_url

DEFAULT_RUNS = ((1, 600.0), (20, 60.0))  # (pairs, speed)
MIN_CANDLES = 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, help="BTCUSDT plus pairs-1 clones (with --speed)")
    parser.add_argument("--speed", type=float, help="replay speed")
    parser.add_argument("--candles", type=int, default=MIN_CANDLES, help="live candles to time")
    parser.add_argument(
        "--pairs-per-actor",
        type=int,
        default=PAIRS_PER_ACTOR,
        help="pairs one pair actor hosts (1: a process each)",
    )
    args = parser.parse_args()
    runs = ((args.pairs, args.speed),) if args.pairs and args.speed else DEFAULT_RUNS
    with database_url(get_settings()) as url:
        for pairs, speed in runs:  # each result as soon as it is measured: one JSON document per run
            print(
                json.dumps(
                    asyncio.run(run_live_bench(url, pairs, speed, args.candles, args.pairs_per_actor)),
                    indent=2,
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
