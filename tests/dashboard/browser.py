"""Debian's Chromium driven by Playwright (no browser download): flags and page helpers."""

from __future__ import annotations

import re

from playwright.async_api import BrowserContext, Page, Playwright, expect

from cryptocast.dashboard.changes import SIGNED_IN
from tests.helpers import eventually

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1300}
CALLBACK = re.compile(r"/_dash-update-component")  # the URL of every Dash callback request

# The main chart's traces as Plotly holds them in the page: (name, type, number of points).
TRACES_JS = """() => {
  const g = document.querySelector('#price-chart .js-plotly-plot');
  return g && g.data ? g.data.map(t => [t.name || '', t.type || '', (t.x || []).length]) : [];
}"""
# The newest candle's time on the main chart, or null.
LAST_CANDLE_JS = """() => {
  const g = document.querySelector('#price-chart .js-plotly-plot');
  const c = g && g.data ? g.data.find(t => t.type === 'candlestick') : null;
  return c && c.x.length ? c.x[c.x.length - 1] : null;
}"""

# The main chart's x-axis range as Plotly holds it (what a zoom sets), and its candles' times.
RANGE_JS = "() => document.querySelector('#price-chart .js-plotly-plot').layout.xaxis.range"
CANDLE_X_JS = (
    "() => document.querySelector('#price-chart .js-plotly-plot').data.find(t => t.type === 'candlestick').x"
)
# Every text an element shows from now on, in order, kept in the page (a state shorter than a poll
# of Playwright's would otherwise go unseen).
RECORD_TEXTS_JS = """(selector) => {
  const node = document.querySelector(selector);
  window.__texts = window.__texts || {};
  const seen = (window.__texts[selector] = [node.textContent]);
  new MutationObserver(() => {
    if (node.textContent !== seen[seen.length - 1]) seen.push(node.textContent);
  }).observe(node, {childList: true, characterData: true, subtree: true});
}"""
TEXTS_JS = "(selector) => window.__texts[selector]"


async def launch(playwright: Playwright, user_data_dir: str) -> BrowserContext:
    return await playwright.chromium.launch_persistent_context(
        user_data_dir, executable_path=CHROMIUM, headless=True, args=FLAGS, viewport=VIEWPORT
    )


async def sign_in(page: Page, token: str, wait_ms: int) -> None:
    """Sign in on the page with ``token``, as a viewer pastes it, and wait until the page says so."""
    await page.fill("#token", token)
    await page.click("#sign-in")
    await expect(page.locator("#auth-status")).to_have_text(SIGNED_IN, timeout=wait_ms)


async def pick_pair(page: Page, symbol: str) -> None:
    """Choose ``symbol`` in the pair picker, as a user clicks it."""
    await page.click("#pair")
    await page.get_by_role("option", name=re.compile(rf"^{symbol} \(")).click()
    await expect(page.locator("#pair")).to_contain_text(symbol)


async def record_texts(page: Page, selector: str) -> None:
    """Start keeping every text the element at ``selector`` shows; :func:`texts` reads them."""
    await page.evaluate(RECORD_TEXTS_JS, selector)


async def texts(page: Page, selector: str) -> list[str]:
    return await page.evaluate(TEXTS_JS, selector)


async def traces(page: Page) -> list[list]:
    return await page.evaluate(TRACES_JS)


async def last_candle(page: Page) -> str | None:
    return await page.evaluate(LAST_CANDLE_JS)


async def wait_traces(page: Page, names: set[str], wait_ms: int) -> list[list]:
    """The main chart's traces once every one of ``names`` has points."""
    return await eventually(
        lambda: traces(page),
        f"traces {sorted(names)} all drawn",
        timeout_s=wait_ms / 1000,
        every_s=0.25,
        until=lambda found: names <= {name for name, _, points in found if points},
    )


async def wait_next_candle(page: Page, seen: str | None, wait_ms: int) -> str:
    """The newest candle on the chart once it is later than ``seen``."""
    await page.wait_for_function(f"(before) => ({LAST_CANDLE_JS})() !== before", arg=seen, timeout=wait_ms)
    shown = await last_candle(page)
    assert shown is not None and (seen is None or shown > seen), (seen, shown)
    return shown


async def drag_zoom(page: Page) -> list:
    """Box-zoom the main chart onto 55-80 % of its width with the mouse, as a user drags; the new range."""
    box = await page.locator("#price-chart .nsewdrag").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    await page.mouse.move(box["x"] + box["width"] * 0.55, y)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=8)
    await page.mouse.up()
    zoom = await page.evaluate(RANGE_JS)
    candles = await page.evaluate(CANDLE_X_JS)
    assert candles[0] < zoom[0] < zoom[1] < candles[-1], (zoom, candles[0], candles[-1])
    return zoom
