"""Fault injection: what can go wrong between a client and an exchange, switchable at run time.

Faults are set at start (``--faults key=value``) and changed through ``POST /replay/faults`` with
a JSON object of the same keys. Durations and rates are on the wall clock.

| key | value | effect |
|---|---|---|
| ``drop`` | seconds (0: off) | every socket connection is cut (no close frame) every N seconds |
| ``stall`` | streams or symbols, comma-separated, ``*`` for all ("" off) | their messages are withheld; connections stay open |
| ``burst`` | count | once: every connection receives its latest message N times at once |
| ``malformed`` | fraction 0..1 | socket messages sent as truncated JSON |
| ``5xx`` | fraction 0..1 | REST requests answered with 500/502/503 |
| ``latency`` | milliseconds | added to every REST response and socket message |
| ``storm`` | seconds | every REST request gets 429 (-1003) for that long |
| ``ban`` | seconds | every REST request gets 418 for that long |
| ``halt`` | ``SYMBOL:seconds`` | the symbol is HALT (quiet streams) for that long, then TRADING |
| ``future`` | ``SYMBOL:minutes`` | once: a closed kline of the symbol dated that many minutes ahead |
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptocast.exchange.ratelimit import WeightLimiter

FAULT_KEYS = ("drop", "stall", "burst", "malformed", "5xx", "latency", "storm", "ban", "halt", "future")
ALL_STREAMS = "*"


class FaultError(ValueError):
    """A fault specification is malformed; the message says which key and why."""


def parse_fault_args(args: list[str]) -> dict[str, str]:
    """``["drop=30", "latency=200"]`` → ``{"drop": "30", "latency": "200"}``."""
    spec: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise FaultError(f"fault {arg!r}: expected key=value, keys: {', '.join(FAULT_KEYS)}")
        spec[key.strip()] = value.strip()
    return spec


def _scalar(value: object) -> str | float:
    """A text or JSON number for ``int()`` / ``float()``; anything else is the TypeError they raise."""
    if isinstance(value, str | int | float):
        return value
    raise TypeError(f"a number or numeric string is needed, not {type(value).__name__!r}")


def _fraction(key: str, value: object) -> float:
    rate = float(_scalar(value))
    if not 0.0 <= rate <= 1.0:
        raise FaultError(f"fault {key}: a fraction between 0 and 1, got {value!r}")
    return rate


def _seconds(key: str, value: object) -> float:
    seconds = float(_scalar(value))
    if seconds < 0:
        raise FaultError(f"fault {key}: seconds must be >= 0, got {value!r}")
    return seconds


def _symbol_and_count(key: str, value: object, known_symbols: set[str]) -> tuple[str, int]:
    """``"BTCUSDT:30"`` → ``("BTCUSDT", 30)``: a known symbol and a whole count of at least 1."""
    symbol, _, count = str(value).partition(":")
    symbol = symbol.strip().upper()
    if symbol not in known_symbols:
        raise FaultError(f"fault {key}: unknown symbol {symbol!r}")
    if not count.strip().isdigit() or int(count) < 1:
        raise FaultError(f"fault {key}: expected SYMBOL:minutes with whole minutes >= 1, got {value!r}")
    return symbol, int(count)


@dataclass
class Faults:
    """The active faults; the server and the stream hub consult it on every request and message."""

    limiter: WeightLimiter
    drop_every_s: float = 0.0
    stalled: frozenset[str] = frozenset()
    malformed_rate: float = 0.0
    rest_error_rate: float = 0.0
    latency_ms: float = 0.0
    burst_pending: int = 0
    halted_until_ms: dict[str, int] = field(default_factory=dict)  # wall time
    future_pending: dict[str, int] = field(default_factory=dict)  # symbol: minutes ahead, sent once
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def apply(self, spec: Mapping[str, object], known_symbols: set[str]) -> None:
        """Merge ``spec`` (string or JSON values) into the active faults."""
        unknown = set(spec) - set(FAULT_KEYS)
        if unknown:
            raise FaultError(f"unknown faults {sorted(unknown)}; keys: {', '.join(FAULT_KEYS)}")
        now = self.limiter.wall()
        try:
            for key, value in spec.items():
                self._apply_one(key, value, now, known_symbols)
        except (TypeError, ValueError) as exc:
            raise FaultError(str(exc)) from exc

    def _apply_one(self, key: str, value: object, now: int, known_symbols: set[str]) -> None:
        if key == "drop":
            self.drop_every_s = _seconds(key, value)
        elif key == "stall":
            items = value if isinstance(value, list) else str(value).split(",")
            self.stalled = frozenset(str(s).strip().lower() for s in items if str(s).strip())
        elif key == "burst":
            self.burst_pending = int(_scalar(value))
        elif key == "malformed":
            self.malformed_rate = _fraction(key, value)
        elif key == "5xx":
            self.rest_error_rate = _fraction(key, value)
        elif key == "latency":
            self.latency_ms = _seconds(key, value)
        elif key == "storm":
            self.limiter.storm_until_ms = now + int(_seconds(key, value) * 1000)
        elif key == "ban":
            self.limiter.ban_all_until_ms = now + int(_seconds(key, value) * 1000)
        elif key == "halt":
            symbol, _, seconds = str(value).partition(":")
            symbol = symbol.strip().upper()
            if symbol not in known_symbols:
                raise FaultError(f"fault halt: unknown symbol {symbol!r}")
            self.halted_until_ms[symbol] = now + int(_seconds(key, seconds or 0) * 1000)
        elif key == "future":
            symbol, minutes = _symbol_and_count(key, value, known_symbols)
            self.future_pending[symbol] = minutes

    def clear(self) -> None:
        self.drop_every_s = self.malformed_rate = self.rest_error_rate = self.latency_ms = 0.0
        self.stalled = frozenset()
        self.burst_pending = 0
        self.halted_until_ms.clear()
        self.future_pending.clear()
        self.limiter.forgive()

    def is_halted(self, symbol: str) -> bool:
        until = self.halted_until_ms.get(symbol)
        return until is not None and self.limiter.wall() < until

    def is_stalled(self, stream: str) -> bool:
        if not self.stalled:
            return False
        return (
            ALL_STREAMS in self.stalled
            or stream in self.stalled
            or stream.split("@", maxsplit=1)[0] in self.stalled
        )

    def chance(self, rate: float) -> bool:
        return rate > 0 and (rate >= 1.0 or self.rng.random() < rate)

    def describe(self) -> dict:
        now = self.limiter.wall()
        return {
            "drop": self.drop_every_s,
            "stall": sorted(self.stalled),
            "malformed": self.malformed_rate,
            "5xx": self.rest_error_rate,
            "latency": self.latency_ms,
            "storm": max(0.0, (self.limiter.storm_until_ms - now) / 1000),
            "ban": max(0.0, (self.limiter.ban_all_until_ms - now) / 1000),
            "halt": {s: (until - now) / 1000 for s, until in self.halted_until_ms.items() if until > now},
            "future": dict(self.future_pending),
        }
