"""Debian's Chromium driven by Playwright (no browser download): flags and page helpers."""

from __future__ import annotations

from playwright.async_api import BrowserContext, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync"]  # fmt: skip
VIEWPORT = {"width": 1400, "height": 1300}

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


async def launch(playwright: Playwright, user_data_dir: str) -> BrowserContext:
    return await playwright.chromium.launch_persistent_context(
        user_data_dir, executable_path=CHROMIUM, headless=True, args=FLAGS, viewport=VIEWPORT
    )


async def traces(page: Page) -> list[list]:
    return await page.evaluate(TRACES_JS)


async def last_candle(page: Page) -> str | None:
    return await page.evaluate(LAST_CANDLE_JS)
