"""The bundled recordings, the loader for user recordings, and packing CSV into Parquet."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from cryptocast.exchange.recordings import (
    BUNDLED_DIR,
    RecordingError,
    infer_step,
    load_recording,
    load_recordings,
    pack,
    split_symbol,
)
from cryptocast.records import MINUTE_MS

# From the provenance note: pair → bars, and the three exchange-wide holes of November 2019.
BARS = {
    "BTCUSDT": 44640,
    "ETHUSDT": 44640,
    "ETHBTC": 45162,
    "BNBBTC": 44135,
    "LTCBTC": 45161,
    "XRPBTC": 44135,
    "ADABTC": 44136,
}
HOLES_2019 = [  # (first missing minute, missing minutes), UTC ms
    (1573610400000, 140),  # 2019-11-13 02:00–04:19
    (1573623000000, 3),  # 2019-11-13 05:30–05:32
    (1574647200000, 120),  # 2019-11-25 02:00–03:59
]


def holes(open_time: np.ndarray) -> list[tuple[int, int]]:
    gaps = np.flatnonzero(np.diff(open_time) > MINUTE_MS)
    return [
        (int(open_time[i]) + MINUTE_MS, int((open_time[i + 1] - open_time[i]) // MINUTE_MS) - 1) for i in gaps
    ]


def test_bundled_recordings_match_the_provenance_note() -> None:
    recordings = {r.symbol: r for r in load_recordings()}
    assert {s: len(r) for s, r in recordings.items()} == BARS
    for symbol, rec in recordings.items():
        expected = HOLES_2019 if symbol.endswith("BTC") else []
        assert holes(rec.open_time) == expected, symbol
        assert np.all(rec.low <= np.minimum(rec.open, rec.close)) and np.all(
            rec.high >= np.maximum(rec.open, rec.close)
        )
    assert recordings["BTCUSDT"].tick_size == 0.01 and recordings["XRPBTC"].tick_size == 1e-8
    assert (BUNDLED_DIR / "README.md").read_text().count("2019-11-13 02:00") >= 1


def test_bundled_data_stays_small() -> None:
    total = sum(p.stat().st_size for p in BUNDLED_DIR.rglob("*") if p.is_file())
    assert total < 4_000_000


def test_pack_round_trips_exact_values(tmp_path: Path) -> None:
    csv = tmp_path / "ADAXYZ-2020-01.csv.gz"
    rows = [
        "open_time_ms,open,high,low,close,volume",
        "60000,4.35e-06,4.37e-06,4.3e-06,4.36e-06,129598.0",
        "180000,0.00000436,0.00000437,0.00000436,0.00000437,360.5",
    ]
    csv.write_bytes(gzip.compress("\n".join(rows).encode()))
    packed = pack(csv, tmp_path)
    a, b = load_recording(csv), load_recording(packed)
    assert a.symbol == b.symbol == "ADAXYZ"
    for column in ("open_time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(a, column), getattr(b, column)), column
    assert b.open[0] == 4.35e-06 and b.tick_size == 1e-8 and b.step_size == 0.1
    assert holes(b.open_time) == [(120000, 1)]


def test_loader_takes_a_directory_of_user_recordings(tmp_path: Path) -> None:
    (tmp_path / "FOOUSDT_my_export.csv").write_text(
        "open_time_ms,open,high,low,close,volume\n0,1.5,1.6,1.4,1.55,10\n"
    )
    (recording,) = load_recordings(tmp_path)
    assert recording.symbol == "FOOUSDT" and split_symbol(recording.symbol) == ("FOO", "USDT")
    with pytest.raises(RecordingError, match="no recording"):
        load_recordings(tmp_path, pairs=["BARUSDT"])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("open_time_ms,open,high\n0,1,2\n", "missing columns"),
        ("open_time_ms,open,high,low,close,volume\n30000,1,1,1,1,1\n", "whole minutes"),
    ],
)
def test_loader_rejects_bad_recordings(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "FOOUSDT.csv"
    path.write_text(content)
    with pytest.raises(RecordingError, match=problem):
        load_recording(path)


def test_infer_step() -> None:
    assert infer_step(np.array([85240.45, 85240.5])) == 0.01
    assert infer_step(np.array([129598.0, 360.0])) == 1.0
    assert infer_step(np.array([0.0019458, 0.001946])) == 1e-7
