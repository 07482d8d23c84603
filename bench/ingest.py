"""Bulk candle writer vs raw asyncpg COPY in the same run; prints JSON (``make bench`` runs it).

    .venv/bin/python bench/ingest.py                        # 1,000,000 candles, batches of 50,000
    .venv/bin/python bench/ingest.py --rows 2000 --batch 500

Uses ``CRYPTOCAST_DATABASE_URL``'s server (or the embedded one) for a scratch database it drops.
See ``bench/lib/writer.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench.lib

from bench.lib.writer import run_ingest_bench
from cryptocast.settings import get_settings
from cryptocast.sql.location import database_url

ROWS = 1_000_000
BATCH = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=ROWS, help="candles written per scenario")
    parser.add_argument("--batch", type=int, default=BATCH, help="candles per write call")
    args = parser.parse_args()
    with database_url(get_settings()) as url:
        print(asyncio.run(run_ingest_bench(url, args.rows, args.batch)))


if __name__ == "__main__":
    main()
