"""Changing pairs from the page in headless Chromium, against the whole system with an API token.

A browser is anyone's: it may not have signed in, and it can rewrite every value a callback sends
(as devtools do; here ``page.route`` rewrites the callback request). So an anonymous remove must
change nothing, a crafted pair value must be refused with a sentence while the pair and its candles
stay, the token must never reach the page, and a removal or a deletion of data must be confirmed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

import httpx
import pytest
from playwright.async_api import Dialog, Page, Response, Route, expect
from sqlalchemy import text

from cryptocast.dashboard.changes import SIGN_IN_FIRST, SIGNED_IN, SIGNED_OUT
from cryptocast.dashboard.session import SESSION_COOKIE
from cryptocast.sql.database import Database
from tests.dashboard.browser import CALLBACK, pick_pair, sign_in
from tests.dashboard.system import API_TOKEN, FIRST_PAIR, SECOND_PAIR, System
from tests.helpers import eventually

pytestmark = pytest.mark.slow
WAIT_MS = 30_000
LIVE_WAIT_S = 180.0  # a pair added again: backfill of the minutes it missed, then live
QUIET_MS = 3_000  # how long nothing may happen after a dismissed dialog
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# The callback request each step fires, told apart by what triggered it.
TRIGGERS = {
    "ask": "remove-pair.n_clicks",
    "remove": "confirm-remove.submit_n_clicks",
    "purge": "purge-pair.n_clicks",
}
PURGE, DOTS = f"{SECOND_PAIR}?purge=true", f"../pairs/{SECOND_PAIR}?purge=true"
PAIR_SQL = text("""
    SELECT s.status, (SELECT count(*) FROM price_history p WHERE p.symbol_id = s.id) AS candles
    FROM symbols s WHERE s.symbol = :symbol
""")
REMOVALS_SQL = text("""
    SELECT kind FROM commands WHERE symbol = :symbol AND kind IN ('remove_pair', 'purge_pair') AND id > :after
    ORDER BY id
""")


async def _pair(db: Database, symbol: str) -> tuple[str, int] | None:
    """The pair's status and stored candles, or None when it is not in the database."""
    async with db.connect() as conn:
        row = (await conn.execute(PAIR_SQL, {"symbol": symbol})).first()
    return None if row is None else (row.status, row.candles)


async def _last_command(db: Database) -> int:
    async with db.connect() as conn:
        return (await conn.execute(text("SELECT coalesce(max(id), 0) FROM commands"))).scalar_one()


async def _removals(db: Database, symbol: str, after: int) -> list[str]:
    """Kinds of the remove and purge commands for ``symbol`` submitted after command ``after``."""
    async with db.connect() as conn:
        return list((await conn.execute(REMOVALS_SQL, {"symbol": symbol, "after": after})).scalars())


async def _live(db: Database) -> tuple[str, int] | None:
    found = await _pair(db, SECOND_PAIR)
    return found if found and found[0] == "live" and found[1] else None


@pytest.fixture
async def second_pair(system: System) -> tuple[str, int]:
    """``SECOND_PAIR`` live with candles (asked for through the API with the token when it is not)."""
    found = await _pair(system.db, SECOND_PAIR)
    if found is None or found[0] == "removed":
        async with httpx.AsyncClient(base_url=system.api_url, timeout=30, headers=AUTH) as http:
            answer = await http.post("/pairs", json={"symbol": SECOND_PAIR})
        assert answer.status_code in (202, 409), answer.text  # 409: asked for already
    return await eventually(
        lambda: _live(system.db), f"{SECOND_PAIR} live with candles", timeout_s=LIVE_WAIT_S, every_s=0.5
    )


def _rewrite(trigger: str, value: str, rewritten: list[dict]) -> Callable[[Route], Awaitable[None]]:
    """A route handler that sets the pair (and the typed symbol) of the callback ``trigger`` fires to
    ``value`` before the request leaves the browser, as a viewer editing it in devtools."""

    async def handle(route: Route) -> None:
        body = route.request.post_data_json
        if trigger not in body.get("changedPropIds", []):
            await route.continue_()
            return
        for state in body.get("state", []):
            if (state["id"], state["property"]) in (("pair", "value"), ("purge-symbol", "value")):
                state["value"] = value
        rewritten.append(body)
        await route.continue_(post_data=json.dumps(body))

    return handle


def _fired_by(response: Response, trigger: str) -> bool:
    """Whether ``response`` answers the callback request that ``trigger`` fired."""
    return bool(CALLBACK.search(response.url)) and trigger in json.loads(
        response.request.post_data or "{}"
    ).get("changedPropIds", [])


async def _accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_an_anonymous_remove_changes_nothing(
    system: System, page: Page, second_pair: tuple[str, int]
) -> None:
    after = await _last_command(system.db)
    page.on("dialog", _accept)
    await page.goto(system.dashboard_url)
    await pick_pair(page, SECOND_PAIR)
    await page.click("#remove-pair")
    message = page.locator("#pair-message")
    await expect(message).not_to_be_empty(timeout=WAIT_MS)
    assert await _removals(system.db, SECOND_PAIR, after) == [], await message.inner_text()
    await expect(message).to_have_text(SIGN_IN_FIRST.format(action="change pairs"))
    status, candles = await _pair(system.db, SECOND_PAIR)
    assert status == "live" and candles >= second_pair[1]


@pytest.mark.parametrize(
    ("action", "crafted"),
    [("ask", PURGE), ("remove", PURGE), ("remove", DOTS), ("purge", PURGE), ("purge", DOTS)],
)
async def test_a_crafted_pair_is_refused_and_the_pair_and_its_candles_stay(
    system: System, page: Page, second_pair: tuple[str, int], action: str, crafted: str
) -> None:
    after = await _last_command(system.db)
    rewritten: list[dict] = []
    await page.route(CALLBACK, _rewrite(TRIGGERS[action], crafted, rewritten))
    page.on("dialog", _accept)
    await page.goto(system.dashboard_url)
    await sign_in(page, API_TOKEN, WAIT_MS)  # the viewer may change pairs: only the value stops it
    await pick_pair(page, SECOND_PAIR)
    if action == "purge":
        await page.click(".purge summary")
        await page.fill("#purge-symbol", SECOND_PAIR)
    await page.click("#purge-pair" if action == "purge" else "#remove-pair")
    message = page.locator("#pair-message")
    await expect(message).to_contain_text("is not a pair symbol", timeout=WAIT_MS)
    assert rewritten, "no callback request was rewritten"
    assert crafted[:40] in await message.inner_text()
    assert await _removals(system.db, SECOND_PAIR, after) == []
    status, candles = await _pair(system.db, SECOND_PAIR)
    assert status == "live" and candles >= second_pair[1]


async def test_the_token_never_reaches_the_browser(system: System, page: Page) -> None:
    reads: list[asyncio.Future] = []

    def keep(response: Response) -> None:
        """Read every page, layout and callback answer (before anything navigates away from it)."""
        if response.request.resource_type in ("document", "fetch", "xhr") and response.status == 200:
            reads.append(asyncio.ensure_future(response.text()))

    page.on("response", keep)
    await page.goto(system.dashboard_url)
    await expect(page.locator("#auth-status")).to_have_text(SIGNED_OUT, timeout=WAIT_MS)
    await sign_in(page, API_TOKEN, WAIT_MS)
    assert await page.input_value("#token") == ""
    second = await page.context.new_page()  # the session outlives the page: the cookie carries it
    second.on("response", keep)
    await second.goto(system.dashboard_url)
    await expect(second.locator("#auth-status")).to_have_text(SIGNED_IN, timeout=WAIT_MS)
    await expect(second.locator("#models-table")).to_be_visible(timeout=WAIT_MS)  # callbacks have answered
    bodies = [*await asyncio.gather(*reads), await page.content(), await second.content()]
    stored = await page.evaluate(
        "() => JSON.stringify([document.cookie, {...localStorage}, {...sessionStorage}])"
    )
    assert len(bodies) > 10 and not [b for b in [*bodies, stored] if API_TOKEN in b]
    assert json.loads(stored)[0] == ""  # no cookie a script can read
    cookies = await page.context.cookies(system.dashboard_url)
    assert [c["name"] for c in cookies] == [SESSION_COOKIE], cookies
    [cookie] = cookies
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie["value"]) and API_TOKEN not in cookie["value"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


async def test_a_wrong_token_shows_the_api_refusal_and_signing_out_forgets_the_session(
    system: System, page: Page
) -> None:
    wrong = f"not-{API_TOKEN}"
    async with httpx.AsyncClient(
        base_url=system.api_url, timeout=30, headers={"Authorization": f"Bearer {wrong}"}
    ) as http:
        refused = (await http.post(f"/pairs/{FIRST_PAIR}/retrain")).json()["message"]
    after = await _last_command(system.db)
    await page.goto(system.dashboard_url)
    await sign_in(page, wrong, WAIT_MS)
    await expect(page.locator("#pair")).to_contain_text(FIRST_PAIR, timeout=WAIT_MS)
    await page.click("#retrain")
    await expect(page.locator("#retrain-message")).to_have_text(refused, timeout=WAIT_MS)

    await sign_in(page, API_TOKEN, WAIT_MS)
    [held] = await page.context.cookies(system.dashboard_url)
    await page.click("#sign-out")
    await expect(page.locator("#auth-status")).to_have_text(SIGNED_OUT, timeout=WAIT_MS)
    assert await page.context.cookies(system.dashboard_url) == []
    await page.context.add_cookies([held])  # the old id, sent again: the server has forgotten it
    await page.click("#retrain")
    await expect(page.locator("#retrain-message")).to_have_text(
        SIGN_IN_FIRST.format(action="retrain"), timeout=WAIT_MS
    )
    async with system.db.connect() as conn:
        queued = await conn.execute(text("SELECT count(*) FROM commands WHERE id > :after"), {"after": after})
    assert queued.scalar_one() == 0


async def test_a_removal_is_confirmed_first(system: System, page: Page, second_pair: tuple[str, int]) -> None:
    asked: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    after = await _last_command(system.db)
    await page.goto(system.dashboard_url)
    await sign_in(page, API_TOKEN, WAIT_MS)
    await pick_pair(page, SECOND_PAIR)
    page.once("dialog", dismiss)
    await page.click("#remove-pair")
    await page.wait_for_timeout(QUIET_MS)
    assert len(asked) == 1 and asked[0].startswith(f"Remove {SECOND_PAIR}?"), asked
    assert await _removals(system.db, SECOND_PAIR, after) == []

    page.once("dialog", _accept)
    await page.click("#remove-pair")
    await expect(page.locator("#pair-message")).to_have_text(
        f"{SECOND_PAIR}: removal requested (its data is kept).", timeout=WAIT_MS
    )
    assert await _removals(system.db, SECOND_PAIR, after) == ["remove_pair"]
    _, kept = await eventually(
        lambda: _removed(system.db), f"{SECOND_PAIR} removed", timeout_s=WAIT_MS / 1000, every_s=0.5
    )
    assert kept >= second_pair[1]  # its candles are kept


async def _removed(db: Database) -> tuple[str, int] | None:
    found = await _pair(db, SECOND_PAIR)
    return found if found is not None and found[0] == "removed" else None


async def test_deleting_a_pair_and_its_data_needs_its_symbol_typed(
    system: System, page: Page, second_pair: tuple[str, int]
) -> None:
    after = await _last_command(system.db)
    await page.goto(system.dashboard_url)
    await sign_in(page, API_TOKEN, WAIT_MS)
    await pick_pair(page, SECOND_PAIR)
    await page.click(".purge summary")
    message = page.locator("#pair-message")
    refusal = f"Type {SECOND_PAIR} in the box to delete it and its data; nothing was sent."
    for typed in ("", "BTCUSDT"):
        await page.fill("#purge-symbol", typed)
        async with page.expect_response(lambda r: _fired_by(r, TRIGGERS["purge"]), timeout=WAIT_MS) as answer:
            await page.click("#purge-pair")
        assert refusal in await (await answer.value).text()
        await expect(message).to_have_text(refusal, timeout=WAIT_MS)
    assert await _removals(system.db, SECOND_PAIR, after) == []

    await page.fill("#purge-symbol", SECOND_PAIR)
    await page.click("#purge-pair")
    await expect(message).to_have_text(
        f"{SECOND_PAIR}: removal requested, and its data will be deleted.", timeout=WAIT_MS
    )
    assert await _removals(system.db, SECOND_PAIR, after) == ["purge_pair"]
    await eventually(
        lambda: _gone(system.db), f"{SECOND_PAIR} and its data deleted", timeout_s=WAIT_MS / 1000, every_s=0.5
    )


async def _gone(db: Database) -> bool:
    return await _pair(db, SECOND_PAIR) is None
