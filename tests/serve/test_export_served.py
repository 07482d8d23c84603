"""A Parquet export streamed through the real Serve proxy, past the hot path and the API's middleware,
reads back as the pair's stored candles."""

from __future__ import annotations

import io
from datetime import timedelta

import pyarrow.parquet as pq
import pytest

from cryptocast.sql import export
from tests.serve.conftest import PAIR

pytestmark = pytest.mark.slow


async def test_candles_stream_as_parquet_through_serve(served, client, settled) -> None:
    async with served.db.raw() as conn:
        first = await conn.fetchval(
            "SELECT min(open_time) FROM price_history WHERE symbol_id = $1", served.symbol_id
        )
        rows = await conn.fetch(
            f"SELECT {', '.join(export.CANDLES.names)} FROM price_history "
            "WHERE symbol_id = $1 AND open_time <= $2 ORDER BY open_time",
            served.symbol_id,
            settled,
        )
    span = {"start": first.isoformat(), "end": (settled + timedelta(minutes=1)).isoformat()}
    reply = await client.get(f"/pairs/{PAIR}/candles", params={"format": "parquet", **span})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/vnd.apache.parquet"
    assert reply.headers["content-disposition"].endswith('.parquet"')
    assert pq.read_table(io.BytesIO(reply.content)).to_pylist() == [dict(r) for r in rows]
    again = await client.get(f"/pairs/{PAIR}/candles", params={"format": "csv", **span})
    assert again.headers["content-type"].startswith("text/csv") and len(again.text.splitlines()) == 1 + len(
        rows
    )
