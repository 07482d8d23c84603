"""Small, named queries shared by the CLI, the actors and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cryptocast.sql.database import Database
from cryptocast.sql.schema import commands, price_history, symbols


async def schema_version(db: Database) -> str | None:
    async with db.connect() as conn:
        exists = (await conn.execute(text("SELECT to_regclass('alembic_version')"))).scalar()
        if exists is None:
            return None
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()


async def add_symbol(
    db: Database, symbol: str, base_asset: str, quote_asset: str, exchange: str = "binance", **values: Any
) -> int:
    """Insert a pair (or return the existing one's id)."""
    async with db.begin() as conn:
        stmt = (
            pg_insert(symbols)
            .values(
                exchange=exchange, symbol=symbol, base_asset=base_asset, quote_asset=quote_asset, **values
            )
            .on_conflict_do_nothing(index_elements=["exchange", "symbol"])
            .returning(symbols.c.id)
        )
        new_id = (await conn.execute(stmt)).scalar()
        if new_id is not None:
            return new_id
        return (
            await conn.execute(
                select(symbols.c.id).where(symbols.c.exchange == exchange, symbols.c.symbol == symbol)
            )
        ).scalar_one()


async def symbol_id(db: Database, symbol: str, exchange: str = "binance") -> int | None:
    async with db.connect() as conn:
        return (
            await conn.execute(
                select(symbols.c.id).where(symbols.c.exchange == exchange, symbols.c.symbol == symbol)
            )
        ).scalar()


async def list_symbols(db: Database) -> list[dict]:
    async with db.connect() as conn:
        rows = await conn.execute(select(symbols).order_by(symbols.c.exchange, symbols.c.symbol))
        return [dict(r._mapping) for r in rows]


async def candle_count(db: Database, sid: int) -> int:
    async with db.connect() as conn:
        return (
            await conn.execute(
                select(func.count()).select_from(price_history).where(price_history.c.symbol_id == sid)
            )
        ).scalar_one()


async def last_candle_time(db: Database, sid: int) -> datetime | None:
    async with db.connect() as conn:
        return (
            await conn.execute(
                select(func.max(price_history.c.open_time)).where(price_history.c.symbol_id == sid)
            )
        ).scalar()


async def submit_command(db: Database, kind: str, symbol: str | None = None, **payload: Any) -> int:
    """Ask the running system for work; the insert trigger announces it on the commands channel."""
    async with db.begin() as conn:
        return (
            await conn.execute(
                insert(commands).values(kind=kind, symbol=symbol, payload=payload).returning(commands.c.id)
            )
        ).scalar_one()
