"""The shown range in headless Chromium against the whole system: a picked range is the chart's
x-range and the top-of-book panel's, following live slides it, the download is the API's own CSV,
the replay banner is one line with its details on hover, and the status table lists every pair.

Why: these are what a viewer does with the range controls; only a real browser shows whether the
figures Plotly holds, the file it saves and the line it draws are the ones meant.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from cryptocast.dashboard import ranges
from cryptocast.dashboard.figures import utc
from cryptocast.serve.api import schemas
from tests.dashboard.browser import CANDLE_X_JS, RANGE_JS, wait_next_candle, wait_traces
from tests.dashboard.system import FIRST_PAIR, System
from tests.helpers import eventually

pytestmark = pytest.mark.slow
WAIT_MS = 30_000
BACK = timedelta(hours=2)  # the picked range starts this far before the newest candle
SPAN = timedelta(minutes=60)
BOOK_SPAN = timedelta(minutes=10)  # a range over what the running system stored itself
BOOK_X_JS = """() => {
  const g = document.querySelector('#book-chart .js-plotly-plot');
  return g && g.data && g.data.length ? g.data[0].x : [];
}"""
BOOK_RANGE_JS = "() => document.querySelector('#book-chart .js-plotly-plot').layout.xaxis.range"
# The banner's height against its line height: one line when the ratio is below 1.5.
BANNER_LINES_JS = """() => {
  const el = document.querySelector('#replay-banner');
  const style = getComputedStyle(el);
  const inner = el.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
  return inner / parseFloat(style.lineHeight);
}"""


async def _api(system: System, path: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=system.api_url, timeout=30) as http:
        reply = await http.get(path, params=params)
    assert reply.status_code == 200, reply.text
    return reply


async def _newest(system: System) -> datetime:
    last = (await _api(system, f"/pairs/{FIRST_PAIR}")).json()["freshness"]["last_candle_time"]
    return datetime.fromisoformat(last)


async def _first_stored(system: System, what: str) -> datetime | None:
    """The first minute of ``what`` (top of book, forecasts) the pair has in the last day: they are
    stored from the system's start on, while candles are backfilled."""
    since = (await _newest(system)) - timedelta(days=1)
    rows = (await _api(system, f"/pairs/{FIRST_PAIR}/{what}", start=since.isoformat(), limit="1")).json()
    first = rows[what.replace("-", "_")]
    return (
        datetime.fromisoformat(first[0][0] if isinstance(first[0], list) else first[0]["origin_time"])
        if first
        else None
    )


async def _settled(
    system: System, what: str, length: timedelta, settle: timedelta
) -> tuple[datetime, datetime]:
    """A range of ``length`` from the first minute of ``what`` once the newest candle is ``settle``
    past its end (a forecast's outcome arrives up to its horizon later)."""

    async def ready() -> tuple[datetime, datetime] | None:
        first = await _first_stored(system, what)
        if first is None or await _newest(system) < first + length + settle:
            return None
        return first, first + length

    return await eventually(ready, f"{what} stored over {length}", timeout_s=3 * WAIT_MS / 1000, every_s=1)


async def _pick(page: Page, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Type the range and show it, as a viewer does."""
    await page.fill("#range-start", ranges.shown(start))
    await page.fill("#range-end", ranges.shown(end))
    await page.click("#show-range")
    return start, end


async def _pick_back(page: Page, system: System) -> tuple[datetime, datetime]:
    """Pick a range ``SPAN`` long starting ``BACK`` before the newest candle (backfilled candles)."""
    start = (await _newest(system)) - BACK
    return await _pick(page, start, start + SPAN)


async def _shown_x_range(page: Page, js: str) -> list | None:
    return await page.evaluate(f"() => {{ try {{ return ({js})(); }} catch (e) {{ return null; }} }}")


def _times(values: list | None) -> list[datetime] | None:
    """Plotly's date strings (it may drop zero seconds) or typed times as naive UTC times."""
    if not values or not all(isinstance(v, str) and v for v in values):
        return None
    return [datetime.fromisoformat(v).replace(tzinfo=None) for v in values]


async def _frozen(page: Page) -> list | None:
    """The chart's x-range once it is the range written into the inputs (a fixed one), else None."""
    typed = [await page.locator(f"#range-{end}").input_value() for end in ("start", "end")]
    shown = await _shown_x_range(page, RANGE_JS)
    return shown if _times(shown) is not None and _times(shown) == _times(typed) else None


async def test_a_picked_range_is_the_charts_and_the_books_x_range(system: System, page: Page) -> None:
    await page.goto(system.dashboard_url)
    await wait_traces(page, {"1m candles"}, WAIT_MS)
    start, end = await _pick_back(page, system)
    wanted = [start.replace(tzinfo=None), end.replace(tzinfo=None)]
    await eventually(
        lambda: _shown_x_range(page, RANGE_JS),
        "the picked range on the chart",
        timeout_s=WAIT_MS / 1000,
        until=lambda shown: _times(shown) == wanted,
    )
    await expect(page.locator("#follow input[type=checkbox]")).not_to_be_checked()
    candles = (
        await _api(system, f"/pairs/{FIRST_PAIR}/candles", start=start.isoformat(), end=end.isoformat())
    ).json()["candles"]
    assert candles, "the API has candles in the range"
    shown = await eventually(
        lambda: page.evaluate(CANDLE_X_JS),
        "the range's candles drawn",
        timeout_s=WAIT_MS / 1000,
        until=lambda x: x and x[0] == utc(candles[0][0]),
    )
    assert shown == [utc(c[0]) for c in candles]

    start, end = await _pick(page, *await _settled(system, "top-of-book", BOOK_SPAN, timedelta(minutes=1)))
    wanted = [start.replace(tzinfo=None), end.replace(tzinfo=None)]

    async def drawn_and_stored() -> tuple[list, list]:
        """The panel's minutes and the API's over the range (quotes of a minute may land late)."""
        drawn = await page.evaluate(BOOK_X_JS)
        book = (
            await _api(
                system, f"/pairs/{FIRST_PAIR}/top-of-book", start=start.isoformat(), end=end.isoformat()
            )
        ).json()["top_of_book"]
        return drawn, [utc(r[0]) for r in book]

    drawn, _ = await eventually(
        drawn_and_stored,
        "the API's top of book over the range drawn",
        timeout_s=WAIT_MS / 1000,
        every_s=1,
        until=lambda both: both[0] == both[1],
    )
    assert len(drawn) >= BOOK_SPAN // timedelta(minutes=2), f"top of book over the range: {drawn}"
    assert _times(await page.evaluate(BOOK_RANGE_JS)) == wanted


async def test_following_live_slides_the_picked_length_and_turning_it_off_freezes(
    system: System, page: Page
) -> None:
    await page.goto(system.dashboard_url)
    await wait_traces(page, {"1m candles"}, WAIT_MS)
    _, end = await _pick_back(page, system)
    await expect(page.locator("#window input:checked")).to_have_count(0, timeout=WAIT_MS)
    follow = page.locator("#follow input[type=checkbox]")
    await follow.check()
    seen = await eventually(
        lambda: page.evaluate(CANDLE_X_JS),
        "the window moved to the newest candle",
        timeout_s=WAIT_MS / 1000,
        until=lambda x: len(x) > 1 and x[-1] > utc(end.isoformat()),
    )
    newest = await wait_next_candle(page, seen[-1], WAIT_MS)
    x = await page.evaluate(CANDLE_X_JS)
    assert x[-1] == newest
    first, last = (datetime.fromisoformat(t) for t in (x[0], x[-1]))
    assert last - first <= SPAN - timedelta(minutes=1), (x[0], x[-1])  # the picked length, not the 6 h preset
    assert last - first >= SPAN - timedelta(minutes=5), (x[0], x[-1])
    await expect(page.locator("#range-start")).not_to_have_value("")

    await follow.uncheck()
    start_input, end_input = page.locator("#range-start"), page.locator("#range-end")
    frozen = await eventually(
        lambda: _frozen(page),
        "the range on screen fixed, and written into the inputs, once following is off",
        timeout_s=WAIT_MS / 1000,
    )
    candles = await page.evaluate(CANDLE_X_JS)
    await page.wait_for_timeout(3000)  # three candles close on the replay meanwhile
    assert await page.evaluate(RANGE_JS) == frozen
    assert await page.evaluate(CANDLE_X_JS) == candles
    assert _times([await start_input.input_value(), await end_input.input_value()]) == _times(frozen)


async def _download(page: Page, what: str) -> str:
    await page.click("#export-kind")
    await page.get_by_role("option", name=what, exact=True).click()
    async with page.expect_download(timeout=WAIT_MS) as waiting:
        await page.click("#download")
    saved = await (await waiting.value).path()
    return Path(saved).read_text()


async def test_the_download_is_the_apis_csv_of_the_shown_range(system: System, page: Page) -> None:
    await page.goto(system.dashboard_url)
    await wait_traces(page, {"1m candles"}, WAIT_MS)
    # forecasts are stored from the system's start on; their outcomes arrive up to 30 minutes later
    start, end = await _pick(page, *await _settled(system, "predictions", BOOK_SPAN, timedelta(minutes=31)))
    await expect(page.locator("#follow input[type=checkbox]")).not_to_be_checked(timeout=WAIT_MS)
    for what in ("candles", "predictions"):
        downloaded = await _download(page, what)
        expected = await _api(
            system, f"/pairs/{FIRST_PAIR}/{what}", format="csv", start=start.isoformat(), end=end.isoformat()
        )
        assert downloaded.splitlines() == expected.text.splitlines(), what
        assert len(downloaded.splitlines()) > 1, f"{what}: rows besides the header"


async def test_the_banner_is_one_line_with_its_details_on_hover_and_the_table_lists_the_pairs(
    system: System, page: Page
) -> None:
    await page.goto(system.dashboard_url)
    banner = page.locator("#replay-banner")
    await expect(banner).to_be_visible(timeout=WAIT_MS)
    await expect(banner).to_contain_text("REPLAY EXCHANGE")
    title = await eventually(
        lambda: banner.get_attribute("title"), "the banner's details", timeout_s=WAIT_MS / 1000
    )
    speed = (await _api(system, "/health")).json()["exchange"]["replay"]["speed"]
    assert f"speed {speed}×" in title and "Recordings" in title and "exchange clock" in title, title
    assert await page.evaluate(BANNER_LINES_JS) < 1.5
    status = schemas.StatusList.model_validate((await _api(system, "/status")).json())  # as documented
    tracked = [
        p["symbol"] for p in (await _api(system, "/pairs")).json()["pairs"] if p["status"] != "removed"
    ]
    assert [p.symbol for p in status.pairs] == tracked
    table = page.locator("#system-table")
    for pair in status.pairs:
        await expect(table).to_contain_text(pair.symbol, timeout=WAIT_MS)
