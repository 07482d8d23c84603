"""The page's browser-side callbacks, run in headless Chromium on crafted inputs.

Why: they decide what the viewer sees when answers cross on the way back (a chart for the range
before a change, a pair picked while the list was on its way); those orders are rare on a quiet
machine, so each case is built here instead of waited for.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from cryptocast.dashboard import ranges
from cryptocast.dashboard.app import CHOOSE_PAIR_JS, DRAW_CHART_JS

KEEP = "no update"
# ``dash_clientside`` as the renderer gives it to a callback: the no-update marker and what fired.
RUN_JS = """([source, fired, args, keep]) => {
  const triggered = fired.map((p) => ({prop_id: p}));
  window.dash_clientside = {no_update: keep, callback_context: {triggered}};
  return eval("(" + source + ")")(...args);
}"""
LIVE = ranges.to_store(ranges.live(60))
PICKED = {
    "follow": False,
    "minutes": 60,
    "start": "2026-01-01T00:00:00+00:00",
    "end": "2026-01-01T01:00:00+00:00",
}
STAMP = {"symbol": "BTCUSDT", "last": "2026-01-01T03:00:00+00:00"}


def _figure(revision: str, last: str, x: list[str]) -> dict:
    return {
        "data": [{"type": "candlestick", "x": x}],
        "layout": {"uirevision": revision, "meta": {"last": last}, "title": {"text": f"last {last}"}},
    }


def _answer(
    view: dict,
    last: str | None,
    symbol: str = "BTCUSDT",
    revision: str = "BTCUSDT/live 60",
    keep: bool = False,
) -> dict:
    figure = _figure(revision, last, [last]) if last else {"data": [], "layout": {"title": {"text": "down"}}}
    return {
        "symbol": symbol,
        "view": view,
        "revision": revision,
        "keep": keep,
        "figure": figure,
    }


@pytest.fixture
async def blank(page: Page) -> Page:
    await page.set_content("<html><body></body></html>")
    return page


async def _draw(page: Page, answer: dict, stamp: dict, view: dict, current: dict | None) -> object:
    return await page.evaluate(
        RUN_JS, [DRAW_CHART_JS, ["chart-answer.data"], [answer, stamp, view, current], KEEP]
    )


async def test_an_answer_for_another_range_or_pair_is_not_drawn(blank: Page) -> None:
    on_screen = _figure("BTCUSDT/live 60", STAMP["last"], [STAMP["last"]])
    assert await _draw(blank, _answer(PICKED, STAMP["last"]), STAMP, LIVE, on_screen) == KEEP
    assert await _draw(blank, _answer(LIVE, STAMP["last"], symbol="ETHUSDT"), STAMP, LIVE, on_screen) == KEEP


async def test_an_older_candle_never_replaces_a_newer_one_on_the_same_chart(blank: Page) -> None:
    on_screen = _figure("BTCUSDT/live 60", STAMP["last"], [STAMP["last"]])
    older = _answer(LIVE, "2026-01-01T02:59:00+00:00")
    assert await _draw(blank, older, STAMP, LIVE, on_screen) == KEEP


async def test_a_newer_answer_keeps_the_zoom_and_a_new_chart_is_drawn_whole(blank: Page) -> None:
    zoomed = _figure("BTCUSDT/live 60", "2026-01-01T02:59:00+00:00", ["2026-01-01T02:59:00+00:00"])
    zoomed["layout"]["xaxis"] = {"range": ["2026-01-01T02:30", "2026-01-01T02:40"]}  # a drag zoom
    newer = _answer(LIVE, STAMP["last"])
    drawn = await _draw(blank, newer, STAMP, LIVE, zoomed)
    assert drawn["data"] == newer["figure"]["data"]
    assert drawn["layout"]["xaxis"] == zoomed["layout"]["xaxis"]
    assert drawn["layout"]["title"] == newer["figure"]["layout"]["title"]
    assert drawn["layout"]["meta"] == {"last": STAMP["last"]}
    other = _answer(LIVE, STAMP["last"], revision="BTCUSDT/live 360")
    assert await _draw(blank, other, STAMP, LIVE, zoomed) == other["figure"]
    assert await _draw(blank, newer, STAMP, LIVE, None) == newer["figure"]


async def test_a_failed_read_keeps_the_chart_on_screen_and_else_is_the_chart(blank: Page) -> None:
    on_screen = _figure("BTCUSDT/live 60", STAMP["last"], [STAMP["last"]])
    failed = _answer(LIVE, None, keep=True)
    assert await _draw(blank, failed, STAMP, LIVE, on_screen) == KEEP
    assert await _draw(blank, failed, STAMP, LIVE, None) == failed["figure"]
    other = _figure("BTCUSDT/live 360", STAMP["last"], [STAMP["last"]])
    assert await _draw(blank, failed, STAMP, LIVE, other) == failed["figure"]


async def test_the_picker_keeps_a_listed_pair_takes_an_added_one_and_else_the_first(blank: Page) -> None:
    options = [
        {"label": "BTCUSDT (live)", "value": "BTCUSDT"},
        {"label": "ETHUSDT (live)", "value": "ETHUSDT"},
    ]

    async def choose(fired: str, pending: object, current: object, listed: list = options) -> object:
        return await blank.evaluate(RUN_JS, [CHOOSE_PAIR_JS, [fired], [listed, pending, current], KEEP])

    assert await choose("pair.options", None, "ETHUSDT") == KEEP  # picked while the list was on its way
    assert await choose("pair.options", None, None) == "BTCUSDT"
    assert await choose("pair.options", None, "XRPUSDT") == "BTCUSDT"  # removed meanwhile
    assert await choose("pending.data", "SOLUSDT", "ETHUSDT") == "SOLUSDT"
    assert await choose("pair.options", None, None, []) == KEEP
