"""With the API stopped the dashboard says so in every panel instead of drawing blank charts."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from playwright.async_api import Page, expect
from werkzeug.serving import make_server

from cryptocast.dashboard.app import create_app
from tests.serve.conftest import free_port

pytestmark = pytest.mark.slow
WAIT_MS = 30_000


@pytest.fixture
def dashboard_without_api() -> Iterator[str]:
    api_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    server = make_server("127.0.0.1", 0, create_app(api_url).server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


async def test_api_down_is_a_message_not_a_blank_chart(dashboard_without_api: str, page: Page) -> None:
    await page.goto(dashboard_without_api)
    await expect(page.locator("#api-message")).to_contain_text("is not reachable", timeout=WAIT_MS)
    await expect(page.locator("#price-chart")).to_contain_text("is not reachable", timeout=WAIT_MS)
    await expect(page.locator("#system")).to_contain_text("is not reachable", timeout=WAIT_MS)
