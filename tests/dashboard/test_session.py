"""Viewers' sessions: opaque ids, bounded and expiring; the cookie carries only the id; ``/healthz``."""

from __future__ import annotations

import re
import threading

import flask
import pytest
from werkzeug.serving import make_server

from cryptocast.dashboard import health
from cryptocast.dashboard.app import create_app
from cryptocast.dashboard.session import SESSION_COOKIE, SessionStore, token_problem
from tests.helpers import free_port

TOKEN = "a-viewers-token-of-24-ch"
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_session_id_is_random_and_opaque_and_finds_its_token() -> None:
    store = SessionStore()
    first, second = store.open(TOKEN), store.open(TOKEN)
    assert first != second and SESSION_ID.fullmatch(first) and TOKEN not in first
    assert store.token(first) == TOKEN and store.token("not-a-session") is None and store.token(None) is None
    store.close(first)
    assert store.token(first) is None and store.token(second) == TOKEN


def test_sessions_expire_and_the_oldest_go_when_the_store_is_full() -> None:
    clock = Clock()
    store = SessionStore(max_sessions=3, ttl_s=60, clock=clock)
    ids = [store.open(f"{TOKEN}-{i}") for i in range(4)]
    assert store.token(ids[0]) is None and len(store) == 3
    clock.now = 59
    assert store.token(ids[3]) == f"{TOKEN}-3"
    clock.now = 60
    assert [store.token(i) for i in ids] == [None] * 4 and len(store) == 0


@pytest.mark.parametrize(
    "text", ["", "   ", None, 42, "x" * 513, "two words", "tab\there", "ünïcode-token-16ch"]
)
def test_a_value_that_cannot_be_a_token_is_refused_with_a_sentence(text: object) -> None:
    problem = token_problem(text)
    assert problem is not None and problem.endswith(".")


def test_a_token_is_accepted_as_pasted_around_spaces() -> None:
    assert token_problem(f"  {TOKEN}\n") is None


def _sign_in_body(text: str) -> dict:
    """The request Dash's renderer sends for *Sign in* with ``text`` in the field."""
    return {
        "output": "..auth-status.children...token.value...sign-out.hidden..",
        "outputs": [
            {"id": "auth-status", "property": "children"},
            {"id": "token", "property": "value"},
            {"id": "sign-out", "property": "hidden"},
        ],
        "inputs": [
            {"id": "sign-in", "property": "n_clicks", "value": 1},
            {"id": "token", "property": "n_submit", "value": None},
            {"id": "sign-out", "property": "n_clicks", "value": None},
        ],
        "changedPropIds": ["sign-in.n_clicks"],
        "state": [{"id": "token", "property": "value", "value": text}],
    }


def test_signing_in_sets_an_http_only_strict_cookie_with_the_id_and_answers_without_the_token() -> None:
    client = create_app(f"http://127.0.0.1:{free_port()}").server.test_client()
    reply = client.post("/_dash-update-component", json=_sign_in_body(TOKEN))
    assert reply.status_code == 200 and TOKEN not in reply.get_data(as_text=True)
    [cookie] = reply.headers.getlist("Set-Cookie")
    name, _, rest = cookie.partition("=")
    value, *attributes = [part.strip() for part in rest.split(";")]
    assert name == SESSION_COOKIE and SESSION_ID.fullmatch(value)
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes)
    assert TOKEN not in client.get("/").get_data(as_text=True)
    assert TOKEN not in client.get("/_dash-layout").get_data(as_text=True)


def test_a_refused_token_sets_no_cookie() -> None:
    client = create_app(f"http://127.0.0.1:{free_port()}").server.test_client()
    reply = client.post("/_dash-update-component", json=_sign_in_body("two words"))
    assert reply.status_code == 200 and reply.headers.getlist("Set-Cookie") == []


def test_healthz_answers_ok_without_the_api_and_names_no_url() -> None:
    api_url = f"http://user:secret@127.0.0.1:{free_port()}"  # nothing listens there
    reply = create_app(api_url).server.test_client().get(health.HEALTH_PATH)
    assert reply.status_code == 200 and reply.get_json() == {"status": "ok", "api": "not answering"}
    assert "secret" not in reply.get_data(as_text=True) and "127.0.0.1" not in reply.get_data(as_text=True)


def test_the_api_is_probed_at_most_once_per_ttl() -> None:
    probes: list[float] = []
    clock = Clock()
    stand_in = flask.Flask("stand-in-api")

    @stand_in.get("/health")
    def degraded() -> tuple[dict, int]:  # a degraded API still answers
        probes.append(clock.now)
        return {"status": "degraded"}, 503

    server = make_server("127.0.0.1", 0, stand_in, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check = health.ApiCheck(f"http://127.0.0.1:{server.server_port}", clock=clock)
        for now in (0.0, 1.0, health.API_CHECK_TTL_S - 0.1, health.API_CHECK_TTL_S):
            clock.now = now
            assert check.answered()
    finally:
        server.shutdown()
        thread.join()
    assert probes == [0.0, health.API_CHECK_TTL_S]
