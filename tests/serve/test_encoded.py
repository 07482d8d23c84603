"""Answers serialised once: the same JSON as before, gzip when asked for, ETags that ignore the clock."""

from __future__ import annotations

import gzip
import json

from starlette.requests import Request

from cryptocast.serve.encoded import Prepared, dumps, encode, respond


def _request(**headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "query_string": b""})


BODY = {
    "symbol": "BTCUSDT",
    "candles": [["2025-03-01T00:00:00+00:00", 84000.5, 1.25]] * 200,
    "freshness": {
        "models": [{"kind": "persistence", "version": 1}],
        "last_candle_time": "2025-03-01T03:19:00+00:00",
        "data_lag_s": 1.5,
    },
}


def test_body_round_trips_and_gzip_is_served_only_to_who_asks() -> None:
    answer = encode(BODY)
    assert json.loads(answer.data) == BODY
    plain = respond(answer, _request())
    assert json.loads(plain.body) == BODY and "content-encoding" not in plain.headers
    packed = respond(answer, _request(accept_encoding="gzip, br"))
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    assert json.loads(gzip.decompress(packed.body)) == BODY and len(packed.body) < len(answer.data)
    small = encode({"symbol": "BTCUSDT"})
    assert (
        small.gzipped is None
        and "content-encoding" not in respond(small, _request(accept_encoding="gzip")).headers
    )


def test_etag_ignores_the_clock_but_not_the_data() -> None:
    answer = encode(BODY)
    later = encode(BODY | {"freshness": BODY["freshness"] | {"data_lag_s": 9.0}})
    assert later.etag == answer.etag
    assert respond(answer, _request(if_none_match=answer.etag)).status_code == 304
    changed = encode(BODY | {"candles": BODY["candles"][:-1]})
    newer_model = encode(
        BODY | {"freshness": BODY["freshness"] | {"models": [{"kind": "lstm", "version": 2}]}}
    )
    assert len({answer.etag, changed.etag, newer_model.etag}) == 3


def test_spliced_fragments_read_as_part_of_the_body() -> None:
    rows = BODY["candles"]
    answer = encode({k: v for k, v in BODY.items() if k != "candles"}, {"candles": dumps(rows)})
    assert json.loads(answer.data) == BODY
    assert list(json.loads(answer.data))[-1] == "freshness"
    assert answer.etag == encode(BODY).etag  # the same data, however it was assembled


def test_a_prepared_page_answers_many_freshness_blocks_each_complete() -> None:
    rows = BODY["candles"]
    page = Prepared({"symbol": "BTCUSDT"}, {"candles": dumps(rows)})
    answers = [page.finish(BODY["freshness"] | {"data_lag_s": lag}) for lag in (1.0, 2.0, 1.0)]
    for answer, lag in zip(answers, (1.0, 2.0, 1.0), strict=True):
        assert json.loads(answer.data) == BODY | {"freshness": BODY["freshness"] | {"data_lag_s": lag}}
        assert gzip.decompress(answer.gzipped) == answer.data  # header, CRC and length of the whole body
    assert answers[0].gzipped == answers[2].gzipped != answers[1].gzipped
    assert len({a.etag for a in answers}) == 1 and answers[0].etag == encode(BODY).etag
    assert json.loads(page.finish(None).data) == {"symbol": "BTCUSDT", "candles": rows}
