"""The Ray Tune sweep end to end: tiny, on loopback, registering a gated model in PostgreSQL."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess

import pytest

from cryptocast.tune import registry
from cryptocast.tune.baseline import ensure_baseline
from cryptocast.tune.dataset import SplitSpans
from cryptocast.tune.heads import HEADS
from cryptocast.tune.history import HistoryNeeds
from cryptocast.tune.pipeline import train_pair
from cryptocast.tune.predictor import LSTM, PERSISTENCE
from cryptocast.tune.training_run import TrainOptions
from tests.tune.tune_data import btc, load_pair

HOUR_MS = 3_600_000
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _ray_down_afterwards():
    yield
    import ray

    ray.shutdown()


def _ray_listeners() -> list[str]:
    """Local addresses that this process and its children (Ray's GCS, raylet, workers) listen on."""
    import psutil

    ray_pids = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if pids & ray_pids:
            found.append(line.split()[3].rsplit(":", 1)[0].strip("[]"))
    return found


async def test_sweep_registers_a_gated_model_and_binds_loopback(db, tmp_path) -> None:
    store = registry.ModelStore(str(tmp_path / "models"))
    sid = await load_pair(db, "BTCUSDT", btc(2.0))
    await ensure_baseline(db, store, sid)
    options = TrainOptions(
        trials=2,
        epochs=1,
        days=2,
        needs=HistoryNeeds.fixed(
            SplitSpans(val_ms=3 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=12 * HOUR_MS), 6 * HOUR_MS
        ),
        period_ms=2 * HOUR_MS,
    )
    told: list[dict] = []
    outcome = await train_pair(db, store, sid, options, tmp_path / "ray", told.append)
    sweep = [p for p in told if p["phase"] == "sweep"]
    assert next(p["phase"] for p in told) == "loading" and told[-1]["phase"] == "gating"
    assert sorted({p["trial"] for p in sweep}) == [0, 1, 2] and all(p["trials"] == 2 for p in sweep)
    assert sweep[-1]["best_val_skill"] == max(t["val_skill"] for t in outcome.trials)
    assert sweep[-1]["eta_s"] == 0 and len(outcome.trials) == 2
    # the replay's order flow is derived: no trial may train on it
    assert all(not {"taker", "trades"} & set(t["config"]["groups"]) for t in outcome.trials)
    assert all(t["config"]["head"] in HEADS for t in outcome.trials)
    lstm = outcome.lstm
    assert lstm.kind == LSTM and lstm.hyperparameters["trials"] == 2
    promoted = [d.horizon for d in outcome.decisions if d.promote]
    assert lstm.served_horizons == promoted
    assert lstm.status == (registry.CHAMPION if promoted else registry.SHADOW)
    assert all(d.reason for d in outcome.decisions) and lstm.status_reason
    assert (await registry.current(db, sid, PERSISTENCE)).id == outcome.baseline.id
    assert outcome.report["models"]["persistence"]["1"]["skill"] == 0.0
    served = await registry.load_served(db, sid)
    assert served.predict(
        btc(1.3, offset_days=3.9)
    ).horizons  # the coverage correction replays up to 1,801 minutes
    addresses = _ray_listeners()
    assert addresses, "no Ray listener found to check"
    for address in addresses:
        assert ipaddress.ip_address(address.removeprefix("::ffff:")).is_loopback, address
