"""Serving benchmark: API throughput and latency against a no-op Serve floor, on loopback; JSON.

    .venv/bin/python bench/serve.py                    # default, tuned and direct-ingress Serve options
    .venv/bin/python bench/serve.py --configs direct --client httpx   # one, loaded from Python
    .venv/bin/python bench/serve.py --memory            # 20 live pairs and a Tune trial: RSS

Concurrency 1, 16 and 64, idle and with two pairs live from the replay exchange at 60x; the
candle close → stored prediction latency in the live phase. See ``bench/lib/serving.py`` and
``bench/lib/memory.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench.lib

from bench.lib.memory import run_memory_bench
from bench.lib.serving import CONFIGS, LOADERS, run_serve_bench
from cryptocast.settings import get_settings
from cryptocast.sql.location import database_url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--client", choices=LOADERS, help="load generator (default: wrk when installed)")
    parser.add_argument(
        "--memory", action="store_true", help="RSS with 20 live pairs and a Tune trial instead"
    )
    args = parser.parse_args()
    with (
        database_url(get_settings()) as url,
        tempfile.TemporaryDirectory(prefix="cryptocast-bench-models-") as store,
    ):
        if args.memory:
            result = asyncio.run(run_memory_bench(url, store))
        else:
            result = asyncio.run(run_serve_bench(url, store, tuple(args.configs), args.client))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
