"""GCS fault tolerance on one machine: a Redis-backed Ray head, ingestion, then a fault; JSON.

    .venv/bin/python bench/gcs_ft.py                 # both faults, one after the other
    .venv/bin/python bench/gcs_ft.py --fault head --down 20

``gcs`` kills and relaunches the gcs_server process alone; ``head`` stops every process of the
head and starts it again on the same Redis (see ``bench/lib/gcs_ft.py``). Needs redis-server
(scripts/system-deps.sh); uses the configured database or the embedded one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench.lib

from bench.lib.gcs_ft import DOWN_S, FAULTS, SPEED, run_experiment
from cryptocast.settings import get_settings
from cryptocast.sql.location import database_url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fault", choices=FAULTS, help="one fault only (default: both)")
    parser.add_argument("--down", type=float, default=DOWN_S, help="seconds the GCS or head stays down")
    parser.add_argument("--speed", type=float, default=SPEED, help="replay speed")
    args = parser.parse_args()
    with database_url(get_settings()) as url:
        for fault in [args.fault] if args.fault else FAULTS:  # one JSON document per experiment
            result = asyncio.run(run_experiment(url, fault, speed=args.speed, down_s=args.down))
            print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    main()
