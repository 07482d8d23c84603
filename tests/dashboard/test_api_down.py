"""With the API stopped the dashboard says so in every panel instead of drawing blank charts; a
chart already drawn stays, with its zoom, while the API is away and goes on updating when it is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, expect

from cryptocast.dashboard.app import create_app
from tests.dashboard.browser import RANGE_JS, drag_zoom, last_candle, wait_next_candle, wait_traces
from tests.dashboard.system import System, serving
from tests.helpers import free_port

pytestmark = pytest.mark.slow
WAIT_MS = 30_000


@pytest.fixture
def dashboard_without_api() -> Iterator[str]:
    api_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with serving(create_app(api_url)) as url:
        yield url


async def test_api_down_is_a_message_not_a_blank_chart(dashboard_without_api: str, page: Page) -> None:
    await page.goto(dashboard_without_api)
    await expect(page.locator("#api-message")).to_contain_text("is not reachable", timeout=WAIT_MS)
    await expect(page.locator("#price-chart")).to_contain_text("is not reachable", timeout=WAIT_MS)
    await expect(page.locator("#system")).to_contain_text("is not reachable", timeout=WAIT_MS)


class Relay:
    """A TCP relay to the running API that can be cut and restored, the API itself untouched."""

    def __init__(self, api_url: str) -> None:
        target = urlsplit(api_url)
        self.target = (target.hostname, target.port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        """Stop listening and drop the open connections, as an API that went away."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                self.writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def relayed_dashboard(system: System) -> AsyncIterator[tuple[str, Relay]]:
    relay = Relay(system.api_url)
    await relay.open()
    with serving(create_app(relay.url)) as url:
        yield url, relay
    await relay.cut()


async def test_a_drawn_chart_and_its_zoom_survive_an_api_outage(
    relayed_dashboard: tuple[str, Relay], page: Page
) -> None:
    url, relay = relayed_dashboard
    await page.goto(url)
    await wait_traces(page, {"1m candles"}, WAIT_MS)
    zoom = await drag_zoom(page)
    await relay.cut()
    await expect(page.locator("#chart-message")).to_contain_text("is not reachable", timeout=WAIT_MS)
    seen = await last_candle(page)
    assert seen is not None and await page.evaluate(RANGE_JS) == zoom
    await relay.open()
    await expect(page.locator("#chart-message")).to_have_text("", timeout=WAIT_MS)
    await wait_next_candle(page, seen, WAIT_MS)
    assert await page.evaluate(RANGE_JS) == zoom
