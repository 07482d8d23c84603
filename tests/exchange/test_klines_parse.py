"""Reading klines answers in bulk gives exactly what the row-by-row parse gives, or its errors."""

from __future__ import annotations

import json

import pytest
from binance.exceptions import BinanceRequestException

from cryptocast.exchange import binance
from cryptocast.exchange.binance import parse_klines
from cryptocast.exchange.market import ReplaySymbol
from cryptocast.exchange.recordings import load_recordings
from cryptocast.exchange.spread import SpreadModel
from cryptocast.records import DERIVABLE_FIELDS, Candle, Provenance

ROW = '[60000,"2.5","3","1","2","1",119999,"1",3,"1","1","0"]'


def row_by_row(body: bytes, derived: tuple[str, ...] = ()) -> list[Candle]:
    return [Candle.from_rest_row(r, Provenance.REST, derived) for r in (json.loads(body) if body else [])]


@pytest.mark.parametrize("pair", ["BTCUSDT", "XRPBTC"])
def test_replay_pages_parse_exactly_like_rows(pair: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (recording,) = load_recordings(pairs=[pair])
    pages = []
    for clone in (0, 2):  # a clone's prices are rescaled: other digits
        sym = ReplaySymbol(recording, 0, SpreadModel(), name=f"{pair}_C{clone}", clone_index=clone)
        closed_at = sym.end + 1
        for lo in range(0, len(sym.times), 7_000):
            body = sym.klines("1m", int(sym.times[lo]), None, 1000, closed_at).json().encode()
            pages.append((body, row_by_row(body, DERIVABLE_FIELDS)))
    monkeypatch.setattr(binance, "Candle", None)  # the row path would fail: compact pages never take it
    for body, expected in pages:
        assert parse_klines(body, Provenance.REST, DERIVABLE_FIELDS).candles() == expected


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        "",
        f"[{ROW}, {ROW}]",  # whitespace
        ROW.join(["[", "]"]).replace('"0"]', '"0","extra"]'),  # a 13th field
        ROW.join(["[", "]"]).replace(',"0"]', "]"),  # no "ignore" field
        ROW.join(["[", "]"]).replace('"2.5"', "2.5"),  # a number rather than a string
        ROW.join(["[", "]"]).replace('"2.5"', '"1_0"'),  # Python's float() takes underscores
        ROW.join(["[", "]"]).replace(",3,", ",3.0,"),  # a float trade count
        ROW.join(["[", "]"]).replace('"0"]', '"\\u0030"]'),  # an escape
    ],
)
def test_unusual_answers_take_the_row_path(body: str) -> None:
    assert parse_klines(body.encode(), Provenance.REST, ()).candles() == row_by_row(body.encode())


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (ROW.join(["[", "]"]).replace('"2.5"', "null"), TypeError),
        (ROW.join(["[", "]"]).replace('"2.5"', '"x"'), ValueError),
        (ROW.join(["[", "]"]).replace('"2.5"', '""'), ValueError),
        ("<html>busy</html>", BinanceRequestException),
    ],
)
def test_broken_answers_fail_as_before(body: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_klines(body.encode(), Provenance.REST, ())
