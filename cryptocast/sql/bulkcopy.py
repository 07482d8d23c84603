"""Candles as PostgreSQL binary COPY data, and the COPY itself: into a table or through staging.

Candles are encoded by numpy, one fixed-width record per row (no Python object per row), in the
binary COPY format: a fixed header and trailer, big-endian fields each with its length, timestamps
in microseconds since 2000-01-01 UTC. A batch is copied straight into ``price_history`` or into a
per-connection temporary table (:data:`STAGING_TABLE`), from which the writer merges it.
"""

from __future__ import annotations

import struct

import asyncpg
import numpy as np

from cryptocast.records import CandleBlock, Kind

CANDLE_COLUMNS = (
    "symbol_id",
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
    "provenance",
    "derived_fields",
)
STAGING_TABLE = "cryptocast_candles_stage"
_CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} (LIKE price_history INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""
# Binary COPY: a fixed header and trailer; timestamps are microseconds since 2000-01-01 UTC.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_PG_EPOCH_MS = 946_684_800_000
_TEXT_OID = 25
# price_history's fixed-width columns after symbol_id, with their binary COPY types.
_FIXED = (
    ("open_time", ">i8"),
    ("open", ">f8"),
    ("high", ">f8"),
    ("low", ">f8"),
    ("close", ">f8"),
    ("volume", ">f8"),
    ("close_time", ">i8"),
    ("quote_volume", ">f8"),
    ("trades", ">i8"),
    ("taker_buy_base", ">f8"),
    ("taker_buy_quote", ">f8"),
)
_TIMES = ("open_time", "close_time")


def _text_array(values: tuple[str, ...]) -> bytes:
    """A one-dimensional ``text[]`` in PostgreSQL's binary array format."""
    if not values:
        return struct.pack(">iii", 0, 0, _TEXT_OID)
    head = struct.pack(">iiiii", 1, 0, _TEXT_OID, len(values), 1)
    return head + b"".join(struct.pack(">i", len(v.encode())) + v.encode() for v in values)


def _copy_rows(symbol_id: int, b: CandleBlock, kind: Kind) -> bytes:
    """Binary COPY tuples of ``price_history`` for rows of one kind: fixed width, so one numpy record each."""
    provenance, derived = kind[0].value.encode(), _text_array(kind[1])
    layout = [("n", ">i2"), ("symbol_id_len", ">i4"), ("symbol_id", ">i4")]
    for name, kind_code in _FIXED:
        layout += [(f"{name}_len", ">i4"), (name, kind_code)]
    layout += [("provenance_len", ">i4"), ("provenance", f"V{len(provenance)}")]
    layout += [("derived_len", ">i4"), ("derived", f"V{len(derived)}")]
    rows = np.empty(len(b), np.dtype(layout))
    rows["n"] = len(CANDLE_COLUMNS)
    rows["symbol_id_len"], rows["symbol_id"] = 4, symbol_id
    for name, _ in _FIXED:
        rows[f"{name}_len"] = 8
        column = getattr(b, name)
        rows[name] = (column - _PG_EPOCH_MS) * 1000 if name in _TIMES else column
    rows["provenance_len"], rows["provenance"] = len(provenance), np.void(provenance)
    rows["derived_len"], rows["derived"] = len(derived), np.void(derived)
    return rows.tobytes()


def copy_data(symbol_id: int, b: CandleBlock) -> bytes:
    """The whole binary COPY stream of ``b`` as rows of ``price_history`` for ``symbol_id``."""
    if len(b.kinds) == 1:
        parts = [_copy_rows(symbol_id, b, b.kinds[0])]
    else:
        parts = [_copy_rows(symbol_id, b[b.kind == k], kind) for k, kind in enumerate(b.kinds)]
    return b"".join((_COPY_HEADER, *parts, _COPY_TRAILER))


async def copy_into(conn: asyncpg.Connection, table: str, data: bytes) -> str:
    """COPY ``data`` into ``table``; returns the command status (``COPY 5``)."""
    # A memoryview: asyncpg would take plain bytes for a file path.
    return await conn.copy_to_table(table, source=memoryview(data), columns=CANDLE_COLUMNS, format="binary")


async def stage(conn: asyncpg.Connection, data: bytes) -> None:
    """COPY ``data`` into this connection's staging table (emptied when the transaction commits)."""
    await conn.execute(_CREATE_STAGING)
    await copy_into(conn, STAGING_TABLE, data)


def row_count(status: str) -> int:
    """Rows of a command status such as ``INSERT 0 5`` or ``COPY 5``."""
    return int(status.rsplit(" ", 1)[1])
