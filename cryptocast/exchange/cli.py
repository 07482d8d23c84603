"""``cryptocast exchange …``: run the replay exchange standalone, pack recordings."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import typer
from rich.console import Console

from cryptocast import heap
from cryptocast.exchange.clock import DAY_MS
from cryptocast.exchange.faults import FAULT_KEYS, FaultError, parse_fault_args
from cryptocast.exchange.recordings import RecordingError, pack
from cryptocast.exchange.server import ReplayConfig, ReplayServer
from cryptocast.settings import get_settings

app = typer.Typer(help="The replay exchange: Binance's market-data protocol over recorded candles.")
console = Console(stderr=True, soft_wrap=True)
SPAN_UNITS_MS = {"m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}


def parse_span(text: str) -> int:
    """``90m``, ``12h``, ``3d``, ``1w`` → milliseconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([mhdw])", text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r}: expected a span like 90m, 12h, 3d or 1w")
    return int(float(match[1]) * SPAN_UNITS_MS[match[2]])


def parse_clones(specs: list[str]) -> dict[str, int]:
    clones: dict[str, int] = {}
    for spec in specs:
        pair, _, count = spec.partition(":")
        if not count.isdigit() or int(count) < 1:
            raise typer.BadParameter(f"{spec!r}: expected PAIR:N, e.g. BTCUSDT:10")
        clones[pair.strip().upper()] = int(count)
    return clones


@app.command()
def replay(
    port: int = typer.Option(None, help="Port on 127.0.0.1 (default: settings.replay_port, 9180)."),
    speed: float = typer.Option(
        None, help="Exchange clock speed; 1 = real time (default: settings.replay_speed)."
    ),
    pairs: str = typer.Option("", help="Comma-separated pairs to serve (default: every recording)."),
    data: Path = typer.Option(
        None, help="Directory of recordings (CSV or Parquet); default: the bundled ones."
    ),
    faults: list[str] = typer.Option(
        [], help=f"Fault as key=value, repeatable; keys: {', '.join(FAULT_KEYS)}."
    ),
    clone: list[str] = typer.Option([], help="PAIR:N serves N load-test clones of PAIR (repeatable)."),
    reset: bool = typer.Option(False, help="Start a new timeline instead of continuing the stored one."),
    history: str = typer.Option(
        "3d", help="Replayed span before 'now' at a new timeline's start (90m, 12h, 3d, 1w)."
    ),
    weight_limit: int = typer.Option(6000, help="Request weight per minute before HTTP 429."),
) -> None:
    """Serve Binance's REST and websocket market data from recordings on 127.0.0.1."""
    settings = get_settings()
    try:
        config = ReplayConfig(
            port=settings.replay_port if port is None else port,
            speed=settings.replay_speed if speed is None else speed,
            pairs=[p.strip().upper() for p in pairs.split(",") if p.strip()] or None,
            data=data or settings.replay_data,
            state_dir=settings.data_dir / "replay",
            history_ms=parse_span(history),
            reset=reset,
            clones=parse_clones(clone),
            faults=dict(parse_fault_args(faults)),
            weight_limit=weight_limit,
        )
        server = ReplayServer(config)
    except (RecordingError, FaultError, ValueError) as exc:
        console.print(f"[red]replay: {exc}[/red]")
        raise typer.Exit(2) from exc
    try:
        asyncio.run(_serve(server))
    except KeyboardInterrupt:
        console.print("replay exchange stopped")


async def _serve(server: ReplayServer) -> None:
    async with server:
        info = server.describe()
        console.print(f"replay exchange on {server.rest_url} (REST) and {server.stream_url} (streams)")
        console.print(f"speed {info['speed']}×, exchange now {info['exchangeNowMs']}, info at /replay/info")
        for name, sym in info["symbols"].items():
            console.print(
                f"  {name:<14} {sym['status']:<8} shift {sym['shiftMs'] // DAY_MS:>5} days  ({sym['recording']})"
            )
        heap.settle()  # the recordings and the app live as long as the server
        await asyncio.Event().wait()


@app.command("pack")
def pack_command(
    source: list[Path] = typer.Argument(
        ..., help="CSV recordings (open_time_ms,open,high,low,close,volume)."
    ),
    target: Path = typer.Option(Path(), help="Directory for the Parquet files."),
) -> None:
    """Convert CSV recordings to the compact Parquet form the replay bundles (exact decimals, zstd)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source:
        out = pack(path, target)
        console.print(f"{path} → {out} ({out.stat().st_size:,} bytes)")
