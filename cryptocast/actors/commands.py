"""Commands about pairs, as rows: validated against the exchange, then applied to ``symbols``.

The API and the CLI insert rows into ``commands``; the supervisor carries them out. An add is
checked against the exchange's exchangeInfo: an unknown or non-trading symbol fails with the
exchange's reason and nothing is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from binance.exceptions import BinanceAPIException
from sqlalchemy import delete, func, select, update

from cryptocast.exchange.binance import BinanceExchange
from cryptocast.sql.database import Database
from cryptocast.sql.queries import add_symbol
from cryptocast.sql.schema import commands, gaps, models, predictions, price_history, symbols, top_of_book

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9_]{2,32}$")  # underscores: the replay's load-test clones
PAIR_KINDS = ("add_pair", "remove_pair", "purge_pair", "pause_pair", "resume_pair")


class PairRejected(ValueError):
    """A pair cannot be added; the message is the reason to show the user."""


@dataclass(frozen=True, slots=True)
class PairInfo:
    symbol: str
    base_asset: str
    quote_asset: str
    status: str
    derived_fields: tuple[str, ...]


def normalise_symbol(text: str) -> str:
    symbol = text.strip().upper()
    if not SYMBOL_PATTERN.match(symbol):
        raise PairRejected(f"'{text[:40]}' is not a symbol: expected 2-32 letters or digits, like BTCUSDT")
    return symbol


async def validate_pair(exchange: BinanceExchange, text: str) -> PairInfo:
    """The exchange's facts about a symbol, or :class:`PairRejected` with its reason."""
    symbol = normalise_symbol(text)
    try:
        info = await exchange.exchange_info([symbol])
    except BinanceAPIException as exc:
        if exc.code == -1121:
            raise PairRejected(f"{symbol}: the exchange does not list it ({exc.message})") from None
        raise
    entry = next((s for s in info["symbols"] if s["symbol"] == symbol), None)
    if entry is None:
        raise PairRejected(f"{symbol}: the exchange does not list it")
    if entry["status"] != "TRADING":
        raise PairRejected(f"{symbol}: not trading on the exchange (status {entry['status']})")
    derived = await exchange.derived_fields(symbol)
    return PairInfo(symbol, entry["baseAsset"], entry["quoteAsset"], entry["status"], derived)


async def claim_pending(db: Database) -> list[dict]:
    """Take the pending pair commands, oldest first (others, such as retrain, belong to training)."""
    async with db.begin() as conn:
        rows = await conn.execute(
            update(commands)
            .where(
                commands.c.id.in_(
                    select(commands.c.id)
                    .where(commands.c.status == "pending", commands.c.kind.in_(PAIR_KINDS))
                    .order_by(commands.c.id)
                    .with_for_update(skip_locked=True)
                )
            )
            .values(status="running", started_at=func.now())
            .returning(commands)
        )
        return sorted((dict(r._mapping) for r in rows), key=lambda r: r["id"])


async def apply(db: Database, exchange: BinanceExchange, command: dict) -> dict:
    """Carry out one pair command; raises :class:`PairRejected` for a refusal."""
    symbol = normalise_symbol(command["symbol"] or "")
    kind = command["kind"]
    if kind == "add_pair":
        info = await validate_pair(exchange, symbol)
        added = await add_symbol(
            db, info.symbol, info.base_asset, info.quote_asset, derived_fields=list(info.derived_fields)
        )
        async with db.begin() as conn:  # re-adding a removed pair brings it back
            await conn.execute(
                update(symbols)
                .where(symbols.c.id == added, symbols.c.status.in_(("removed", "paused")))
                .values(status="new", last_error=None)
            )
        return {"symbol_id": added}
    async with db.begin() as conn:
        sid = (await conn.execute(select(symbols.c.id).where(symbols.c.symbol == symbol))).scalar()
        if sid is None:
            raise PairRejected(f"{symbol} is not tracked")
        if kind == "purge_pair":
            for table in (predictions, models, price_history, top_of_book, gaps):
                await conn.execute(delete(table).where(table.c.symbol_id == sid))
            await conn.execute(delete(symbols).where(symbols.c.id == sid))
        else:
            status = {"remove_pair": "removed", "pause_pair": "paused", "resume_pair": "new"}[kind]
            await conn.execute(update(symbols).where(symbols.c.id == sid).values(status=status))
    return {"symbol_id": sid}
