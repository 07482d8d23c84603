"""``cryptocast train --local --json``: the training's result alone on stdout, although Ray, Tune and
TensorFlow run in the same process and print as they please.

A pipeline that retrains a pair and gates on the verdict per horizon reads this document; one stray
banner on stdout would make it unparseable.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL

from cryptocast.sql.database import Database
from cryptocast.tune.dataset import DAY_MS, HORIZONS
from cryptocast.tune.history import HistoryNeeds
from tests.helpers import CLI, cli_env
from tests.tune.tune_data import btc, load_pair

HISTORY_DAYS = HistoryNeeds().min_history_ms / DAY_MS + 0.5  # the least a first LSTM trains on, and some
TIMEOUT_S = 600


async def test_train_local_json_is_the_result_alone_on_stdout(db_url: URL, tmp_path: Path) -> None:
    db = Database(db_url)
    await load_pair(db, "BTCUSDT", btc(HISTORY_DAYS))
    await db.dispose()
    args = ["train", "--pair", "btcusdt", "--local", "--trials", "1", "--epochs", "1", "--json"]
    result = await asyncio.to_thread(
        subprocess.run,
        [*CLI, *args, "--days", str(int(HISTORY_DAYS) + 1)],
        env=cli_env(
            {
                "CRYPTOCAST_DATABASE_URL": db_url.set(drivername="postgresql").render_as_string(
                    hide_password=False
                ),
                "CRYPTOCAST_DATA_DIR": str(tmp_path),
            }
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads(result.stdout)
    assert trained["pair"] == "BTCUSDT"
    assert trained["lstm"]["status"] in ("champion", "shadow") and trained["lstm"]["version"] >= 1
    assert [d["horizon"] for d in trained["gate"]] == list(HORIZONS)
    served = [d["horizon"] for d in trained["gate"] if d["promoted"]]
    assert trained["lstm"]["served_horizons"] == served
