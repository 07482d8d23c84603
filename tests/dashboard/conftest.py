"""One whole system per package (starting Ray, Serve and ingestion costs about a minute) and a
fresh Chromium page per test."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, async_playwright
from sqlalchemy.engine import URL

from tests.dashboard.browser import launch
from tests.dashboard.system import System, whole_system
from tests.helpers import scratch_database


@pytest.fixture(scope="package")
async def system(templates: dict[str, URL]) -> AsyncIterator[System]:
    template = templates["embedded"]
    async with (
        scratch_database(template, "ccdash", template=template.database) as db_url,
        whole_system(db_url) as running,
    ):
        yield running


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    # The profile (about 13 MB) goes with the test.
    with tempfile.TemporaryDirectory(prefix="cryptocast-chromium-") as profile:
        async with async_playwright() as playwright:
            context = await launch(playwright, profile)
            try:
                yield await context.new_page()
            finally:
                await context.close()
