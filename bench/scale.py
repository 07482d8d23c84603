"""Ingestion at scale, as JSON: one node with one process per pair against pairs packed in hosts,
then replay clones spread over a local multi-node Ray cluster with a worker node killed mid-run.

    .venv/bin/python bench/scale.py                       # the three runs below
    .venv/bin/python bench/scale.py --only cluster --pairs 300 --nodes 3

1. 20 pairs at 60× on one local node, one pair per actor (a process per pair);
2. the same with pairs packed into hosts (``PAIRS_PER_ACTOR``): latency and memory per pair;
3. ``--pairs`` (100) replay clones on ``--nodes`` (3) worker nodes at 60× for ``--measure`` wall
   seconds, then the last worker node killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench.lib

from bench.lib.ingest import run_live_bench
from bench.lib.scale import run_scale_bench
from cryptocast.actors.pair import PAIRS_PER_ACTOR
from cryptocast.settings import get_settings
from cryptocast.sql.location import database_url

ONE_NODE_PAIRS = 20
SPEED = 60.0
# 150 minutes of 20 pairs. The pairs close together, so a minute's 20 candles are one sample of
# the machine, not 20: over 50 minutes the p99 was the single worst minute; over 150 it is the
# second worst.
ONE_NODE_CANDLES = 3000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["one-node", "cluster"], help="run one part only")
    parser.add_argument("--pairs", type=int, default=100, help="pairs on the cluster")
    parser.add_argument("--nodes", type=int, default=3, help="worker nodes")
    parser.add_argument("--speed", type=float, default=SPEED, help="replay speed")
    parser.add_argument("--measure", type=float, default=60.0, help="wall seconds of steady state")
    parser.add_argument("--no-kill", action="store_true", help="do not kill a worker node")
    args = parser.parse_args()
    result: dict = {"benchmark": "scale"}
    # Ray prints its workers' and raylets' lines to the driver's stdout: they go to stderr here, so
    # that stdout holds the one JSON document.
    with contextlib.redirect_stdout(sys.stderr), database_url(get_settings()) as url:
        if args.only in (None, "one-node"):
            result["one_node"] = {
                name: asyncio.run(
                    run_live_bench(url, ONE_NODE_PAIRS, args.speed, ONE_NODE_CANDLES, per_actor)
                )
                for name, per_actor in (("process_per_pair", 1), ("packed", PAIRS_PER_ACTOR))
            }
        if args.only in (None, "cluster"):
            result["cluster"] = asyncio.run(
                run_scale_bench(url, args.pairs, args.nodes, args.speed, args.measure, kill=not args.no_kill)
            )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
