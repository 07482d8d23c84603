"""Training in ``cryptocast up``, as a user meets it: a real process on the embedded defaults at 60x.

Nobody asks for the first models, yet every default pair gets one; a retrain asked through the API
goes pending → running (with progress) → done and its version is listed with the gate's verdict;
``cryptocast train --wait`` does the same from another process; the daily slot retrains by itself;
and every exchange minute still gets its stored prediction meanwhile.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.helpers import CLI, eventually_sync, running_up

pytestmark = pytest.mark.slow
SPEED = 60
SLOT_AFTER_EXCHANGE_MIN = 240  # the daily slot comes 4 exchange hours (4 minutes) after the start
PAIRS = ("BTCUSDT", "ETHUSDT")
TIMEOUT_S = 600


def _settings() -> dict[str, str]:
    # the replay's clock starts at wall time: the slot's minute of the day is placed from now
    slot = datetime.now(UTC) + timedelta(minutes=SLOT_AFTER_EXCHANGE_MIN)
    return {
        "CRYPTOCAST_REPLAY_SPEED": str(SPEED),
        "CRYPTOCAST_TRAIN_TRIALS": "2",
        "CRYPTOCAST_TRAIN_EPOCHS": "1",
        "CRYPTOCAST_TRAIN_DAILY_MINUTE": str(slot.hour * 60 + slot.minute),
        "CRYPTOCAST_TRAIN_STAGGER_MINUTES": "20",
    }


def _commands(api: httpx.Client, **params: str) -> list[dict]:
    return api.get("/commands", params=params | {"limit": 100}).json()["commands"]


def test_up_trains_every_pair_retrains_on_request_and_on_its_daily_slot(tmp_path: Path) -> None:
    started = time.monotonic()
    with running_up(tmp_path, _settings(), startup_timeout_s=TIMEOUT_S) as up:
        output = up.output
        assert "training: daily at" in output, output
        api = httpx.Client(base_url=re.search(r"API: (http://\S+)", output).group(1), timeout=30)

        # 1. nobody asked: every default pair gets its first LSTM, gated and registered
        def first_models() -> list[dict] | None:
            done = [
                c
                for c in _commands(api, kind="retrain")
                if c["trigger"] == "new_pair" and c["status"] != "pending"
            ]
            finished = [c for c in done if c["status"] in ("done", "failed")]
            return finished if len(finished) == len(PAIRS) else None

        firsts = eventually_sync(
            first_models, "first training of every pair", timeout_s=TIMEOUT_S, every_s=1.0
        )
        assert all(c["status"] == "done" for c in firsts), [c["error"] for c in firsts]
        first_minutes = (time.monotonic() - started) / 60
        for pair in PAIRS:
            versions = api.get(f"/models/{pair}").json()["versions"]
            lstm = next(v for v in versions if v["kind"] == "lstm")
            assert len(lstm["metrics"]["gate"]) == 4 and lstm["status"] in ("champion", "shadow")

        # 2. a retrain through the API: pending → running with progress → done, listed with its verdict
        queued = api.post("/pairs/BTCUSDT/retrain")
        assert queued.status_code == 202 and queued.json()["scheduler"]["running"], queued.text
        url = queued.headers["location"]
        seen: set[str] = set()
        progress: list[dict] = []

        def finished() -> dict | None:
            body = api.get(url).json()
            seen.add(body["status"])
            if body["progress"]:
                progress.append(body["progress"])
            return body if body["status"] in ("done", "failed") else None

        done = eventually_sync(finished, "the requested retrain", timeout_s=TIMEOUT_S, every_s=0.3)
        assert done["status"] == "done", done["error"]
        assert "running" in seen and any(
            p.get("phase") == "sweep" and p.get("trials") == 2 for p in progress
        ), progress
        version = done["result"]["lstm"]["version"]
        listed = {v["version"]: v for v in api.get("/models/BTCUSDT").json()["versions"]}
        assert listed[version]["kind"] == "lstm" and [
            g["horizon"] for g in listed[version]["metrics"]["gate"]
        ] == [1, 5, 15, 30]

        # 3. the same from another process: cryptocast train --wait against the running system
        waited = subprocess.run(
            [*CLI, "train", "--pair", "ETHUSDT", "--wait", "--timeout", str(TIMEOUT_S)],
            env=up.env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S + 60,
        )
        assert waited.returncode == 0, waited.stderr
        assert re.search(r"command \d+ done in \d+ s: LSTM v\d+", waited.stderr), waited.stderr

        # 4. the daily slot retrains by itself, on the exchange clock
        def daily() -> dict | None:
            rows = [c for c in _commands(api, symbol="BTCUSDT", kind="retrain") if c["trigger"] == "daily"]
            return rows[0] if rows and rows[0]["status"] in ("done", "failed") else None

        slot = eventually_sync(daily, "the daily slot's retrain", timeout_s=TIMEOUT_S, every_s=1.0)
        assert slot["status"] == "done", slot["error"]
        plan = api.get("/pairs/BTCUSDT").json()["training"]
        assert plan["scheduler"]["running"] and plan["next"]["kind"] == "retrain"
        assert datetime.fromisoformat(plan["next"]["at"]) > datetime.fromisoformat(slot["started_at"])

        # 5. predictions kept coming: every closed minute since the first forecast has one
        _assert_every_minute_predicted(api, "BTCUSDT")
        rest = up.interrupt()
        assert up.process.returncode == 0 and "stopped cleanly" in rest, rest[-2000:]
    print(f"first LSTM of every pair {first_minutes:.1f} min after start")


def _assert_every_minute_predicted(api: httpx.Client, pair: str) -> None:
    last = datetime.fromisoformat(api.get(f"/pairs/{pair}").json()["freshness"]["last_candle_time"])
    since = (last - timedelta(hours=12)).isoformat()  # longer than this test runs on the exchange clock
    predictions = api.get(f"/pairs/{pair}/predictions", params={"start": since, "limit": 10_000}).json()[
        "predictions"
    ]
    origins = sorted({p["origin_time"] for p in predictions})
    assert origins, "no stored predictions"
    candles = api.get(f"/pairs/{pair}/candles", params={"start": origins[0], "limit": 10_000}).json()[
        "candles"
    ]
    minutes = [c[0] for c in candles][:-1]  # the newest candle's forecast may still be on its way
    assert len(minutes) > 60, len(minutes)
    assert sorted(set(minutes) - set(origins)) == []
