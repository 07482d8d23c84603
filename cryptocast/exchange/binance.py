"""The one exchange interface of the project: python-binance pointed at the configured exchange.

:class:`BinanceExchange` is python-binance's ``AsyncClient`` whose REST base (``API_URL``) and
websocket base (``STREAM_URL``) come from settings: binance.com, binance.us, the market-data
mirror, testnet or the local replay. Nothing else in the code knows which one it talks to. It adds
typed results (:class:`~cryptocast.records.Candle` with the derived-field marker), the last used
weight, and streams that turn python-binance's silent failure modes (queue overflow, closed read
loop, reconnects, stalls) into exceptions. The client and its :class:`MarketStream` stay in one
module: the client opens the stream, and the stream reads the client's socket manager and the
derived fields it learned from exchangeInfo, so apart each would import the other.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType

import aiohttp
import pyarrow as pa
import pyarrow.csv as pcsv
from binance import AsyncClient, BinanceSocketManager
from binance.exceptions import BinanceRequestException, ReadLoopClosed
from binance.ws.constants import WSListenerState
from binance.ws.reconnecting_websocket import ReconnectingWebsocket

from cryptocast.exchange.protocol import BOOK_FIELD, DERIVED_KEY, REPLAY_NOW_HEADER, USED_WEIGHT_HEADER
from cryptocast.records import DERIVABLE_FIELDS, Candle, CandleBlock, Provenance
from cryptocast.settings import Settings, get_settings

MAX_KLINES_PAGE = 1000
DEFAULT_QUEUE_SIZE = 100  # python-binance's default; overflow raises StreamFailed
SUBSCRIBE_TIMEOUT_S = 10.0  # for the exchange's answer to a SUBSCRIBE
EXCHANGE_INFO_FILTER_MAX = 50  # symbols named in one exchangeInfo request; beyond, the whole list
SOCKET_POLL_S = 1.0  # python-binance's per-receive wait (10 s by default) bounds how fast a socket closes
CLOSE_CHECK_S = 0.1
# python-binance error dicts that mean "the connection dropped, reconnecting": data may be missing.
RECONNECTING_ERRORS = frozenset(
    {
        "BinanceWebsocketClosed",
        "ConnectionClosedError",
        "ConnectionClosedOK",
        "IncompleteReadError",
        "gaierror",
    }
)


# A klines answer read as CSV: rows split at "],[", the 12 fields typed, the last ("ignore") skipped.
_KLINE_FIELDS = [str(i) for i in range(12)]
_KLINE_CSV = (
    pcsv.ReadOptions(column_names=_KLINE_FIELDS, use_threads=False, block_size=1 << 24),
    pcsv.ParseOptions(),
    pcsv.ConvertOptions(
        column_types={f: pa.int64() if f in ("0", "6", "8") else pa.float64() for f in _KLINE_FIELDS[:11]},
        include_columns=_KLINE_FIELDS[:11],
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    ),
)
# Set while a klines request runs: its answer comes back as bytes, to be read in bulk.
_RAW_BODY: ContextVar[bool] = ContextVar("raw_body", default=False)


def parse_klines(body: bytes, provenance: Provenance, derived: tuple[str, ...]) -> CandleBlock:
    """A ``/api/v3/klines`` answer as columns.

    Binance's compact answer is read as CSV by Arrow (numbers parsed in C, no object per row);
    anything else (whitespace, escapes, odd rows) takes the row-by-row path, which accepts and
    refuses exactly what :meth:`Candle.from_rest_row` does.
    """
    if body.startswith(b"[[") and body.endswith(b"]]") and b"\\" not in body:
        try:
            table = pcsv.read_csv(pa.py_buffer(body[2:-2].replace(b"],[", b"\n")), *_KLINE_CSV)
        except pa.ArrowInvalid:
            pass
        else:
            return CandleBlock.of_kind([c.to_numpy() for c in table.columns], provenance, derived)
    try:
        rows = json.loads(body) if body else []
    except ValueError:
        raise BinanceRequestException(f"Invalid Response: {body.decode(errors='replace')}") from None
    return CandleBlock.from_candles([Candle.from_rest_row(r, provenance, derived) for r in rows])


class ExchangeStreamError(Exception):
    """A market stream problem the caller must act on."""


class StreamInterrupted(ExchangeStreamError):
    """The connection dropped and is being re-established; messages in between are lost (refetch over REST)."""


class StreamFailed(ExchangeStreamError):
    """The stream is dead (queue overflow, closed read loop, broken message): open a new one."""


class StreamOverflow(StreamFailed):
    """Messages arrived faster than they were consumed and python-binance's queue overflowed."""


class StreamStalled(StreamFailed):
    """No message arrived within the stall timeout although the connection looked open."""


@dataclass(frozen=True, slots=True)
class KlinePage:
    """Closed candles of one klines request, the forming candle if the range reached now, and the weight used."""

    block: CandleBlock
    forming: Candle | None
    used_weight: int | None

    @property
    def candles(self) -> list[Candle]:
        return self.block.candles()


@dataclass(frozen=True, slots=True)
class BookQuote:
    """Best bid/ask now; ``derived`` when the exchange models the book rather than recording it."""

    symbol: str
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float
    update_id: int | None = None
    derived: bool = False


@dataclass(frozen=True, slots=True)
class KlineUpdate:
    symbol: str
    candle: Candle
    closed: bool
    event_time: int


class BinanceExchange(AsyncClient):
    """python-binance ``AsyncClient`` on the configured exchange; construct it without pinging."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        rest_url: str | None = None,
        stream_url: str | None = None,
        max_queue_size: int = DEFAULT_QUEUE_SIZE,
        **client_kwargs: object,
    ) -> None:
        settings = settings or get_settings()
        super().__init__(**client_kwargs)
        self.API_URL = rest_url or settings.rest_url
        self.stream_url = stream_url or settings.stream_url
        self.max_queue_size = max_queue_size
        self._derived: dict[str, tuple[str, ...]] = {}

    async def __aenter__(self) -> BinanceExchange:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close_connection()

    # --- response metadata ----------------------------------------------------------------------
    def _header(self, name: str) -> str | None:
        return self.response.headers.get(name) if self.response is not None else None

    @property
    def used_weight(self) -> int | None:
        """``X-MBX-USED-WEIGHT-1M`` of the last response (weight this IP used this minute)."""
        value = self._header(USED_WEIGHT_HEADER)
        return int(value) if value is not None else None

    def exchange_now_ms(self) -> int:
        """The exchange clock at the last response (replay), else local wall time + server offset."""
        replay_now = self._header(REPLAY_NOW_HEADER)
        if replay_now is not None:
            return int(replay_now)
        return int(time.time() * 1000) + self.timestamp_offset

    # --- REST -----------------------------------------------------------------------------------
    async def _handle_response(self, response: aiohttp.ClientResponse) -> object:
        """python-binance's response handler; a klines answer comes back as its raw bytes."""
        if _RAW_BODY.get() and 200 <= response.status < 300:
            return await response.read()
        return await super()._handle_response(response)

    async def exchange_info(self, symbols: list[str] | None = None) -> dict:
        """exchangeInfo (for ``symbols`` only if given); remembers which fields each symbol derives."""
        params = (
            {"symbols": json.dumps([s.upper() for s in symbols], separators=(",", ":"))} if symbols else {}
        )
        info = await self._get("exchangeInfo", data=params)
        for entry in info["symbols"]:
            self._derived[entry["symbol"]] = tuple(entry.get(DERIVED_KEY, ()))
        return info

    async def derived_fields(self, symbol: str) -> tuple[str, ...]:
        """Fields the exchange derives rather than records for ``symbol`` (none on Binance)."""
        symbol = symbol.upper()
        if symbol not in self._derived:
            await self.exchange_info([symbol])
        return self._derived[symbol]

    async def _kline_derived(self, symbol: str) -> tuple[str, ...]:
        return tuple(f for f in await self.derived_fields(symbol) if f in DERIVABLE_FIELDS)

    async def klines(
        self,
        symbol: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = MAX_KLINES_PAGE,
    ) -> KlinePage:
        """One page of 1-minute candles (oldest first from ``start_ms``; the latest without it)."""
        derived = await self._kline_derived(symbol)
        params: dict[str, object] = {"symbol": symbol.upper(), "interval": "1m", "limit": limit}
        if start_ms is not None:
            params["startTime"] = start_ms
        if end_ms is not None:
            params["endTime"] = end_ms
        raw = _RAW_BODY.set(True)
        try:
            body = await self.get_klines(**params)
        finally:
            _RAW_BODY.reset(raw)
        now = self.exchange_now_ms()
        block = parse_klines(body, Provenance.REST, derived)
        if len(block) and block.close_time[-1] >= now:
            return KlinePage(block[:-1], block.candle(-1), self.used_weight)
        return KlinePage(block, None, self.used_weight)

    async def book_ticker(self, symbol: str) -> BookQuote:
        derived = BOOK_FIELD in await self.derived_fields(symbol)
        q = await self.get_orderbook_ticker(symbol=symbol.upper())
        return BookQuote(
            q["symbol"],
            float(q["bidPrice"]),
            float(q["bidQty"]),
            float(q["askPrice"]),
            float(q["askQty"]),
            derived=derived,
        )

    # --- streams --------------------------------------------------------------------------------
    def socket_manager(self) -> BinanceSocketManager:
        manager = BinanceSocketManager(self, max_queue_size=self.max_queue_size)
        manager.STREAM_URL = self.stream_url
        return manager

    def stream(self, streams: list[str], stall_timeout_s: float | None = None) -> MarketStream:
        """A combined stream of raw stream names (``btcusdt@kline_1m``, ``ethbtc@bookTicker``)."""
        return MarketStream(self, streams, stall_timeout_s)

    def kline_stream(self, symbols: list[str], stall_timeout_s: float | None = None) -> MarketStream:
        return self.stream([f"{s.lower()}@kline_1m" for s in symbols], stall_timeout_s)

    def book_stream(self, symbols: list[str], stall_timeout_s: float | None = None) -> MarketStream:
        return self.stream([f"{s.lower()}@bookTicker" for s in symbols], stall_timeout_s)


async def close_socket(socket: ReconnectingWebsocket) -> None:
    """Close a python-binance socket, also when it is reconnecting.

    python-binance 1.0.x marks the socket as exiting, but a reconnect finishing afterwards marks it
    as streaming again and the close then waits forever; keep re-marking until the read loop ends.
    """
    closing = asyncio.create_task(socket.__aexit__(None, None, None))
    while not closing.done():
        socket.ws_state = WSListenerState.EXITING
        await asyncio.wait([closing], timeout=CLOSE_CHECK_S)
    await closing


class MarketStream:
    """``async with exchange.kline_stream([...]) as s: async for update in s`` — typed updates or errors."""

    def __init__(self, exchange: BinanceExchange, streams: list[str], stall_timeout_s: float | None) -> None:
        self.exchange = exchange
        self.streams = streams
        self.stall_timeout_s = stall_timeout_s
        self._socket = exchange.socket_manager().multiplex_socket(streams)
        self._socket.TIMEOUT = SOCKET_POLL_S
        self._derived: dict[str, tuple[str, ...]] = {}
        self._answers: dict[int, asyncio.Future[dict]] = {}  # SUBSCRIBE id -> the exchange's answer
        self._next_id = 1

    async def __aenter__(self) -> MarketStream:
        await self._learn_derived(self.streams)
        await self._socket.__aenter__()
        return self

    async def _learn_derived(self, streams: list[str]) -> None:
        symbols = sorted({name.split("@")[0].upper() for name in streams})
        await self.exchange.exchange_info(symbols if len(symbols) <= EXCHANGE_INFO_FILTER_MAX else None)
        self._derived.update({s: self.exchange._derived.get(s, ()) for s in symbols})

    async def subscribe(self, streams: list[str]) -> None:
        """Add ``streams`` to the open connection (Binance's ``SUBSCRIBE``), once the exchange agrees.

        The answer arrives through :meth:`recv`, so a reader must be consuming the stream meanwhile.
        """
        await self._learn_derived(streams)
        ws = self._socket.ws
        if ws is None:
            raise StreamInterrupted("the connection is reconnecting; cannot subscribe")
        request_id, self._next_id = self._next_id, self._next_id + 1
        answer: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = answer
        try:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": request_id}))
            reply = await asyncio.wait_for(answer, SUBSCRIBE_TIMEOUT_S)
        except TimeoutError:
            raise StreamFailed(f"no answer to SUBSCRIBE within {SUBSCRIBE_TIMEOUT_S:.0f} s") from None
        finally:
            self._answers.pop(request_id, None)
        if "error" in reply:
            raise StreamFailed(f"SUBSCRIBE refused: {reply['error']}")
        self.streams = [*self.streams, *streams]

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await close_socket(self._socket)

    def __aiter__(self) -> AsyncIterator[KlineUpdate | BookQuote]:
        return self

    async def __anext__(self) -> KlineUpdate | BookQuote:
        return await self.recv()

    async def _raw(self) -> dict:
        try:
            return await asyncio.wait_for(self._socket.recv(), timeout=self.stall_timeout_s)
        except TimeoutError:
            raise StreamStalled(f"no message for {self.stall_timeout_s} s on {self.streams}") from None
        except ReadLoopClosed as exc:
            raise self._failure(f"read loop closed: {exc}") from exc

    def _failure(self, detail: str) -> StreamFailed:
        """The typed failure; python-binance leaves the reason as an error dict behind the closed loop."""
        pending = list(getattr(self._socket._queue, "_queue", ()))
        reasons = [m.get("type") for m in pending if isinstance(m, dict) and m.get("e") == "error"]
        if "BinanceWebsocketQueueOverflow" in reasons:
            return StreamOverflow(f"BinanceWebsocketQueueOverflow; {detail}")
        return StreamFailed(f"{', '.join(map(str, reasons))}; {detail}" if reasons else detail)

    async def recv(self) -> KlineUpdate | BookQuote:
        while True:
            msg = await self._raw()
            if msg.get("e") == "error":
                kind = str(msg.get("type"))
                if kind in RECONNECTING_ERRORS:
                    raise StreamInterrupted(f"{kind}: {msg.get('m')}")
                if kind == "BinanceWebsocketQueueOverflow":
                    raise StreamOverflow(f"{kind}: {msg.get('m')}")
                raise StreamFailed(f"{kind}: {msg.get('m')}")
            data = msg.get("data")
            if not isinstance(data, dict):  # a control answer ({"result": ..., "id": ...})
                answer = self._answers.get(msg.get("id"))  # type: ignore[arg-type]
                if answer is not None and not answer.done():
                    answer.set_result(msg)
                continue
            update = self._parse(data)
            if update is not None:
                return update

    def _parse(self, data: dict) -> KlineUpdate | BookQuote | None:
        if data.get("e") == "kline":
            symbol = data["s"]
            derived = tuple(f for f in self._derived.get(symbol, ()) if f in DERIVABLE_FIELDS)
            candle = Candle.from_ws_kline(data["k"], Provenance.WEBSOCKET, derived)
            return KlineUpdate(symbol, candle, bool(data["k"]["x"]), int(data["E"]))
        if "b" in data and "a" in data and "u" in data:
            symbol = data["s"]
            return BookQuote(
                symbol,
                float(data["b"]),
                float(data["B"]),
                float(data["a"]),
                float(data["A"]),
                update_id=int(data["u"]),
                derived=BOOK_FIELD in self._derived.get(symbol, ()),
            )
        return None
