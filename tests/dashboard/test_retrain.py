"""*Retrain now* against a stand-in API: what it sends (with the viewer's token or none), which
command it follows, what it refuses to send."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from cryptocast.dashboard.app import _follow, _is_command_id, _request_retrain
from cryptocast.dashboard.changes import SIGN_IN_FIRST
from cryptocast.dashboard.client import ApiClient, pair_path
from tests.dashboard.test_panels import NOT_ENOUGH, SCHEDULER_UP, _command

TOKEN = "a-token-of-sixteen-chars"


def _api(handler: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request]) -> ApiClient:
    """The dashboard's client, its requests answered by ``handler`` and kept in ``seen``."""

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    api = ApiClient("http://api.test")
    api.http = httpx.Client(base_url=api.url, transport=httpx.MockTransport(record))
    return api


def test_retrain_posts_with_the_viewers_token_and_follows_the_new_command() -> None:
    seen: list[httpx.Request] = []
    accepted = _command(id=12, symbol="BTC_USDT") | {"command_id": 12, "scheduler": SCHEDULER_UP}
    api = _api(lambda _: httpx.Response(202, json=accepted), seen)
    assert _request_retrain(api, "BTC_USDT", TOKEN) == ("Retrain of BTC_USDT, command 12: queued", 12)
    assert _request_retrain(api, "BTC_USDT", None) == ("Retrain of BTC_USDT, command 12: queued", 12)
    signed_in, anonymous = seen
    assert (signed_in.method, signed_in.url.raw_path) == ("POST", b"/pairs/BTC_USDT/retrain")
    assert signed_in.headers["authorization"] == f"Bearer {TOKEN}"
    assert "authorization" not in anonymous.headers


def test_a_401_asks_for_a_sign_in_when_none_was_made_and_shows_the_api_message_otherwise() -> None:
    message = "this endpoint needs 'Authorization: Bearer <token>' with the configured API token"
    api = _api(lambda _: httpx.Response(401, json={"error": "unauthorized", "message": message}), [])
    assert _request_retrain(api, "BTCUSDT", None) == (SIGN_IN_FIRST.format(action="retrain"), None)
    assert _request_retrain(api, "BTCUSDT", "a-wrong-token-of-16") == (message, None)


def test_a_conflict_shows_the_api_message_and_follows_the_training_already_open() -> None:
    message = "a retrain of BTCUSDT is already running (command 5); follow it at /commands/5"
    body = {"error": "already_requested", "message": message, "command": _command(id=5, status="running")}
    api = _api(lambda _: httpx.Response(409, json=body), [])
    assert _request_retrain(api, "BTCUSDT", TOKEN) == (message, 5)
    other = {"error": "backfilling", "message": "BTCUSDT is still backfilling (starting)"}
    refused = _request_retrain(_api(lambda _: httpx.Response(409, json=other), []), "BTCUSDT", TOKEN)
    assert refused == (other["message"], None)


@pytest.mark.parametrize(
    "value", ["..", "BTC/USDT", "btcusdt", "BTCUSDT\n", "B", "../health", "%2E%2E", 5, ["X"]]
)
def test_a_selected_value_that_is_not_a_pair_is_refused_before_any_request(value: object) -> None:
    seen: list[httpx.Request] = []
    message, following = _request_retrain(_api(lambda _: httpx.Response(202, json={}), seen), value, TOKEN)
    assert "is not a pair symbol" in message and following is None and seen == []


def test_pair_paths_keep_the_symbol_one_segment() -> None:
    assert pair_path("/pairs", "BTCUSDT") == "/pairs/BTCUSDT"
    assert pair_path("/pairs", "BTC_USDT", "predictions/latest") == "/pairs/BTC_USDT/predictions/latest"
    assert pair_path("/models", "ETHUSDT") == "/models/ETHUSDT"


def test_a_command_is_followed_while_open_or_unreachable_and_no_longer_once_it_ended() -> None:
    views = {
        "/commands/7": _command(status="running", progress={"phase": "loading"}),
        "/commands/8": _command(id=8, status="failed", seconds=0.1, error=NOT_ENOUGH),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/commands/10":
            raise httpx.ConnectError("refused", request=request)
        found = views.get(request.url.path)
        return (
            httpx.Response(200, json=found)
            if found
            else httpx.Response(404, json={"message": "no command 9"})
        )

    api = _api(answer, [])
    assert _follow(api, 7) == ("Retrain of BTCUSDT, command 7: running — loading", 7)
    assert _follow(api, 8) == (f"Retrain of BTCUSDT, command 8: failed after 0.1 s — {NOT_ENOUGH}", None)
    assert _follow(api, 9) == ("no command 9", None)
    text, following = _follow(api, 10)
    assert "is not reachable" in text and following == 10


def test_only_a_positive_whole_number_is_a_command_id() -> None:
    assert _is_command_id(1) and _is_command_id(2**63 - 1)
    assert not any(_is_command_id(v) for v in (0, -3, 2**63, True, 7.0, "7", None, {"id": 7}))
