"""``cryptocast export``: a pair's candles, top of book or predictions over [start, end) as a file.

Why: the same files the API streams with ``?format=``, made where the database is, without a running
server. The file is written beside its destination and renamed into place once whole, so an export
that fails half way leaves no truncated file under the name asked for.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from rich.markup import escape

from cryptocast.cliutil import Pair, console, fail, pair_id, pair_name, with_database
from cryptocast.exitcodes import USAGE
from cryptocast.settings import get_settings
from cryptocast.sql.database import Database

STDOUT = "-"
What = Annotated[str, typer.Option("--what", help="candles, top-of-book or predictions")]
When = Annotated[str, typer.Option(help="ISO 8601 time (UTC if no offset)")]
Format = Annotated[str, typer.Option("--format", help="parquet or csv")]
Out = Annotated[
    str | None,
    typer.Option(
        "--out",
        help="file to write (by default named after the arguments, in this folder); '-': CSV to stdout",
    ),
]
Shadow = Annotated[bool, typer.Option(help="predictions: include the shadow models' too")]


def _time(text: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            escape(f"{option} {text[:40]!r} is not an ISO 8601 time, like 2025-03-01T00:00"), USAGE
        ) from None


def export(
    pair: Pair,
    start: When,
    end: When,
    what: What = "candles",
    file_format: Format = "parquet",
    out: Out = None,
    shadow: Shadow = False,
) -> None:
    """Write the pair's candles, top of book or predictions (with their outcomes) in [start, end) to a
    Parquet or CSV file, read and written in bounded chunks (at most 31 days per file)."""
    from cryptocast.sql import export as exporting

    symbol = pair_name(pair)
    dataset = exporting.DATASETS.get(what)
    if dataset is None:
        raise fail(escape(f"unknown --what {what[:40]!r}: use {', '.join(exporting.DATASETS)}"), USAGE)
    try:
        lo, hi = exporting.check_range(_time(start, "--start"), _time(end, "--end"))
        fmt = exporting.check_format(file_format)
    except exporting.ExportRefused as exc:
        raise fail(escape(str(exc)), USAGE) from None
    if out == STDOUT and fmt != "csv":
        raise fail("only CSV goes to stdout ('--out -'); name a file for Parquet", USAGE)

    async def write(db: Database, sink: BinaryIO) -> int:
        sid = await pair_id(db, symbol)
        counted = 0

        async def rows() -> AsyncIterator[Sequence[Any]]:
            nonlocal counted
            async for chunk in exporting.chunks(db, dataset, sid, lo, hi, shadow=shadow):
                counted += len(chunk)
                yield chunk

        async for piece in exporting.encode(rows(), dataset, fmt):
            sink.write(piece)
        sink.flush()
        return counted

    settings = get_settings()
    if out == STDOUT:
        with_database(settings, lambda db: write(db, sys.stdout.buffer))
        return
    target = Path(out or exporting.filename(symbol, dataset, lo, hi, fmt))
    partial = target.with_name(target.name + ".part")
    try:
        sink = partial.open("wb")
    except OSError as exc:
        raise fail(escape(f"cannot write {partial}: {exc.strerror}")) from None
    try:
        with sink:
            counted = with_database(settings, lambda db: write(db, sink))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    console.print(f"wrote {counted:,} {dataset.name} rows of {symbol} to {target}")


def register(app: typer.Typer) -> None:
    app.command()(export)
