"""One whole system per package (starting Ray, Serve and ingestion costs about a minute) and a
fresh Chromium page per test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, async_playwright
from sqlalchemy.engine import URL

from tests.conftest import _admin
from tests.dashboard.browser import launch
from tests.dashboard.system import System, whole_system


@pytest.fixture(scope="package")
async def system(templates: dict[str, URL]) -> AsyncIterator[System]:
    admin = templates["embedded"].set(database="postgres")
    name = f"ccdash_{os.getpid()}"
    await _admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                 f"CREATE DATABASE {name} TEMPLATE {templates['embedded'].database}")  # fmt: skip
    try:
        async with whole_system(admin.set(database=name)) as running:
            yield running
    finally:
        await _admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        context = await launch(playwright, tempfile.mkdtemp(prefix="cryptocast-chromium-"))
        try:
            yield await context.new_page()
        finally:
            await context.close()
