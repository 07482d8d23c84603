"""API fuzzing with schemathesis against the served OpenAPI spec: no 5xx, every error clear JSON.

Cases are generated from ``/openapi.json`` of the running router (real Serve, real PostgreSQL, the
replay exchange), valid and invalid ones, with the API token so the mutating routes are reached too.
The API limits writes per client address (``ratelimit.py``, tested in ``test_api.py``); the cases
come from ``CLIENTS`` loopback addresses in turn, so that most writes reach their route rather than
the limit (a 429 is still a clear JSON error and counts as one).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from requests.adapters import HTTPAdapter
from schemathesis import GenerationMode

from tests.serve.conftest import TOKEN

pytestmark = pytest.mark.slow

MIN_CASES = 1000
EXAMPLES_PER_MODE = 75  # per operation; parameterless ones stop after their single case
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE_SYMBOLS = ("x'; DROP TABLE symbols; --", "1 OR 1=1", "A" * 5000, "%00", "BTC USDT", "ü" * 70)
CLIENTS = 64  # source addresses 127.0.1.1 ... (all of 127.0.0.0/8 is this machine)


class FromAddress(HTTPAdapter):
    """Connections from one local address."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def clients() -> itertools.cycle:
    """Sessions from ``CLIENTS`` loopback addresses, in turn."""
    sessions = []
    for i in range(1, CLIENTS + 1):
        session = requests.Session()
        session.mount("http://", FromAddress(f"127.0.1.{i}"))
        sessions.append(session)
    return itertools.cycle(sessions)


def problem(reply: requests.Response) -> str | None:
    """Why an answer breaks the contract (5xx, or an error that is not clear JSON), else None."""
    if reply.status_code >= 500:
        return f"{reply.status_code}: {reply.text[:300]}"
    if reply.status_code < 400:
        return None
    try:
        body = reply.json()
    except ValueError:
        return f"{reply.status_code} error is not JSON: {reply.text[:300]}"
    if not (
        isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("message"), str)
    ):
        return f"{reply.status_code} error without error/message: {body!r:.300}"
    return None if body["message"].strip() else f"{reply.status_code} empty message"


def fuzz(base_url: str) -> tuple[Counter, list[str]]:
    """Run every operation in both generation modes; returns (cases sent by status, contract breaches)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    sessions = clients()
    sent: Counter = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_MODE,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:
                reply = case.call(base_url=base_url, session=next(sessions), headers=AUTH, timeout=30)
                sent[reply.status_code] += 1
                why = problem(reply)
                if why:
                    failures.append(f"{case.operation.label} {case.path_parameters} {case.query}: {why}")

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
                assert mode is GenerationMode.NEGATIVE, operation.label
    return sent, failures


def hostile(base_url: str) -> list[str]:
    """SQL-looking and over-long symbols on every symbol route."""
    failures = []
    sessions = clients()
    for symbol in HOSTILE_SYMBOLS:
        for method, path in (
            ("GET", "/pairs/{}"),
            ("GET", "/pairs/{}/candles"),
            ("GET", "/models/{}"),
            ("POST", "/pairs/{}/predict"),
            ("DELETE", "/pairs/{}"),
        ):
            reply = next(sessions).request(
                method,
                base_url + path.format(requests.utils.quote(symbol, safe="")),
                headers=AUTH,
                timeout=30,
            )
            why = problem(reply) or (
                None if reply.status_code in (404, 422) else f"{reply.status_code} accepted"
            )
            if why:
                failures.append(f"{method} {path} {symbol[:40]!r}: {why}")
        reply = next(sessions).post(base_url + "/pairs", json={"symbol": symbol}, headers=AUTH, timeout=30)
        if problem(reply) or reply.status_code not in (404, 422):
            failures.append(f"POST /pairs {symbol[:40]!r}: {reply.status_code} {reply.text[:200]}")
    return failures


async def test_fuzzed_api_never_fails_and_explains_every_error(served, no_commands) -> None:
    sent, failures = await asyncio.to_thread(fuzz, served.url)
    failures += await asyncio.to_thread(hostile, served.url)
    count = sum(sent.values())
    print(f"schemathesis: {count} generated cases, by status {dict(sorted(sent.items()))}")
    assert not [status for status in sent if status >= 500], sent
    assert not failures, "\n".join(failures[:20])
    assert count >= MIN_CASES, f"only {count} generated cases"
