"""API fuzzing with schemathesis against the served OpenAPI spec: no 5xx, every error clear JSON.

Cases are generated from ``/openapi.json`` of the running router (real Serve, real PostgreSQL, the
replay exchange), valid and invalid ones, with the API token so the mutating routes are reached too.
"""

from __future__ import annotations

import asyncio

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.serve.conftest import TOKEN

pytestmark = pytest.mark.slow

MIN_CASES = 1000
EXAMPLES_PER_MODE = 75  # per operation; parameterless ones stop after their single case
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE_SYMBOLS = ("x'; DROP TABLE symbols; --", "1 OR 1=1", "A" * 5000, "%00", "BTC USDT", "ü" * 70)


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


def fuzz(base_url: str) -> tuple[int, list[str]]:
    """Run every operation in both generation modes; returns (cases sent, contract breaches)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    session = requests.Session()
    sent: list[int] = []
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def run(case) -> None:  # noqa: ANN001
                reply = case.call(base_url=base_url, session=session, headers=AUTH, timeout=30)
                sent.append(reply.status_code)
                why = problem(reply)
                if why:
                    failures.append(f"{case.operation.label} {case.path_parameters} {case.query}: {why}")

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
                assert mode is GenerationMode.NEGATIVE, operation.label
    return len(sent), failures


def hostile(base_url: str) -> list[str]:
    """SQL-looking and over-long symbols on every symbol route."""
    failures = []
    for symbol in HOSTILE_SYMBOLS:
        for method, path in (("GET", "/pairs/{}"), ("GET", "/pairs/{}/candles"), ("GET", "/models/{}"),
                             ("POST", "/pairs/{}/predict"), ("DELETE", "/pairs/{}")):  # fmt: skip
            reply = requests.request(method, base_url + path.format(requests.utils.quote(symbol, safe="")),
                                     headers=AUTH, timeout=30)  # fmt: skip
            why = problem(reply) or (
                None if reply.status_code in (404, 422) else f"{reply.status_code} accepted"
            )
            if why:
                failures.append(f"{method} {path} {symbol[:40]!r}: {why}")
        reply = requests.post(base_url + "/pairs", json={"symbol": symbol}, headers=AUTH, timeout=30)
        if problem(reply) or reply.status_code not in (404, 422):
            failures.append(f"POST /pairs {symbol[:40]!r}: {reply.status_code} {reply.text[:200]}")
    return failures


async def test_fuzzed_api_never_fails_and_explains_every_error(served) -> None:  # noqa: ANN001
    count, failures = await asyncio.to_thread(fuzz, served.url)
    failures += await asyncio.to_thread(hostile, served.url)
    print(f"schemathesis: {count} generated cases")
    assert not failures, "\n".join(failures[:20])
    assert count >= MIN_CASES, f"only {count} generated cases"
