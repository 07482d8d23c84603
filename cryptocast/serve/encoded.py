"""JSON answers serialised once: the body, its gzip form and its ETag, ready for any number of callers.

The latest forecast is cached in this form, so a cache hit costs no serialisation and no
compression at all; a page of candles is cached as a :class:`Prepared` answer, finished for each
caller with a freshness block of its own. The ETag covers everything but the clock-driven part of
``freshness`` (ages and lags), so a client polling with ``If-None-Match`` gets 304 until the data
itself changes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request, Response

GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 5  # level 9 (Starlette's default) costs 3× the CPU for 5–8 % fewer bytes on this JSON
MEDIA_TYPE = "application/json"
GZIP_WBITS = 31  # zlib's gzip framing (header and CRC trailer)


@dataclass(frozen=True, slots=True)
class Encoded:
    data: bytes
    gzipped: bytes | None  # None when the body is too small to be worth compressing
    etag: str

    def current(self) -> Encoded:
        """As it is now: a fixed answer never changes (see :class:`Renewing` for one that does)."""
        return self


def dumps(value: object) -> bytes:
    """Compact JSON; also a fragment's form, which :class:`Prepared` splices in as is."""
    return json.dumps(value, default=str, separators=(",", ":")).encode()


class Prepared:
    """An answer serialised, hashed and compressed up to its ``freshness`` block, once.

    A cached page of candles is ~200 KB of JSON that only its freshness block (a few hundred bytes)
    changes between callers. The gzip stream and the ETag hash are kept in their state just before
    that block; each answer copies both and feeds them only the block, so a cache hit costs no
    compression of the rows. (A gzip stream's CRC and length cover the whole body, which is why
    the compressor's state is copied rather than its output reused.)
    """

    __slots__ = ("compressor", "digest", "head", "prefix", "stable")

    def __init__(self, body: dict, fragments: dict[str, bytes] | None = None) -> None:
        stable = dumps({k: v for k, v in body.items() if k != "freshness"})
        for key, value in (fragments or {}).items():
            stable = stable[:-1] + (b"," if len(stable) > 2 else b"") + dumps(key) + b":" + value + b"}"
        self.stable = stable
        self.prefix = stable[:-1] + (b"," if len(stable) > 2 else b"") + b'"freshness":'
        self.digest = hashlib.blake2b(stable, digest_size=12)
        self.compressor: zlib._Compress | None = None
        self.head = b""

    def finish(self, fresh: dict | None) -> Encoded:
        """The whole answer with ``fresh`` as its ``freshness`` (None: an answer without one)."""
        tail = dumps(fresh) + b"}" if fresh is not None else b""
        data = self.prefix + tail if fresh is not None else self.stable
        digest = self.digest.copy()
        digest.update(dumps([(fresh or {}).get("models"), (fresh or {}).get("last_candle_time")]))
        etag = '"' + digest.hexdigest() + '"'
        if len(data) < GZIP_MIN_BYTES:
            return Encoded(data, None, etag)
        if fresh is None:
            return Encoded(data, gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0), etag)
        if self.compressor is None:
            self.compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
            self.head = self.compressor.compress(self.prefix)
        rest = self.compressor.copy()
        return Encoded(data, self.head + rest.compress(tail) + rest.flush(), etag)


class Renewing:
    """A cached answer whose data stay while its clock-driven freshness fields are renewed.

    A read's data (a page of candles, the latest forecast) change only when news says so, but its
    data lag and exchange time age by the second. ``stamp(fresh)`` gives those fields; they are
    renewed at most every ``period()`` seconds, which costs one small serialisation (and, for a
    large body, one copied gzip stream) and no database round trip. The ETag stays: it never
    covered the clock.
    """

    __slots__ = ("encoded", "fresh", "period", "prepared", "stamp", "until")

    def __init__(
        self, prepared: Prepared, fresh: dict, stamp: Callable[[dict], dict], period: Callable[[], float]
    ) -> None:
        self.prepared, self.fresh, self.stamp, self.period = prepared, fresh, stamp, period
        self.encoded: Encoded | None = None
        self.until = 0.0

    def current(self) -> Encoded:
        now = time.monotonic()
        if self.encoded is None or now >= self.until:
            self.encoded = self.prepared.finish(self.fresh | self.stamp(self.fresh))
            self.until = now + self.period()
        return self.encoded


def encode(body: dict, fragments: dict[str, bytes] | None = None) -> Encoded:
    """Serialise ``body`` once, with ``fragments`` (already-serialised values) spliced in after it;
    ``freshness`` goes last so the rest doubles as the ETag's basis."""
    return Prepared(body, fragments).finish(body.get("freshness") if "freshness" in body else None)


def choose(
    answer: Encoded, if_none_match: str | None, accept_encoding: str
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for a caller: 304 for a matching ``If-None-Match``, else 200 with the
    body, gzipped when the caller accepts it."""
    headers = {"ETag": answer.etag}
    if if_none_match == answer.etag:
        return 304, headers, b""
    if answer.gzipped is not None and "gzip" in accept_encoding:
        return 200, headers | {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}, answer.gzipped
    return 200, headers, answer.data


def respond(answer: Encoded, request: Request | None = None) -> Response:
    """The answer as a response for ``request`` (see :func:`choose`)."""
    if request is None:
        return Response(answer.data, media_type=MEDIA_TYPE, headers={"ETag": answer.etag})
    status, headers, body = choose(
        answer, request.headers.get("if-none-match"), request.headers.get("accept-encoding", "")
    )
    if status == 304:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=MEDIA_TYPE, headers=headers)
