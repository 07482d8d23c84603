"""Candles dated in the future: refused wherever they come from (socket, repair, backfill).

A closed candle opened at least one interval before the exchange's now. One dated later is bad data
(a broken feed, a clock gone wrong), and taken as the newest minute seen it would stop the pair:
every real candle until then would look already stored, and the minutes in between would be
ledgered as exchange holes, never to be fetched. So it is refused, counted and logged, and the
minute is fetched over REST once it has really closed (the continuity check finds it missing).
Prices are checked where every candle passes, in the writer.
"""

from __future__ import annotations

from cryptocast.records import MINUTE_MS, CandleBlock

# Slack on the measured exchange clock: only a candle opening beyond now plus one interval is refused.
FUTURE_TOLERANCE_MS = MINUTE_MS


def from_the_future(open_time: int, now_ms: int) -> bool:
    """Whether a closed candle opening at ``open_time`` cannot exist at exchange time ``now_ms``."""
    return open_time > now_ms + FUTURE_TOLERANCE_MS


def split_future(block: CandleBlock, now_ms: int) -> tuple[CandleBlock, list[int]]:
    """The block without its future-dated candles, and their open times."""
    future = block.open_time > now_ms + FUTURE_TOLERANCE_MS
    if not future.any():
        return block, []
    return block[~future], block.open_time[future].tolist()


def describe_future(open_times: list[int], now_ms: int) -> str:
    """A log line's reason: how far ahead of the exchange's now the refused candles are dated."""
    ahead = (max(open_times) - now_ms) / MINUTE_MS
    return f"{len(open_times)} closed candle(s) dated up to {ahead:,.1f} min after the exchange's now"
