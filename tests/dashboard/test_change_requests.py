"""Removing and deleting a pair against a stand-in API: what is sent, and what is refused unsent."""

from __future__ import annotations

import httpx
import pytest
from dash import no_update

from cryptocast.dashboard.changes import _add, _ask_removal, _purge, _remove
from cryptocast.dashboard.client import ApiProblem, shown_url
from tests.dashboard.test_retrain import TOKEN, _api

CRAFTED = [
    "ETHUSDT?purge=true",
    "../pairs/ETHUSDT?purge=true",
    "ETHUSDT/../BTCUSDT",
    "ETHUSDT#",
    "ethusdt",
    7,
]


def _accepted(request: httpx.Request) -> httpx.Response:
    kind = "purge_pair" if request.url.params.get("purge") else "remove_pair"
    return httpx.Response(202, json={"symbol": "ETHUSDT", "command_id": 3, "kind": kind})


def test_a_removal_is_asked_first_and_then_sends_no_purge() -> None:
    seen: list[httpx.Request] = []
    api = _api(_accepted, seen)
    _, message, _, ask, question, _, _ = _ask_removal("ETHUSDT")
    assert (message, ask) == ("", True) and question.startswith("Remove ETHUSDT?") and seen == []
    assert _remove(api, "ETHUSDT", TOKEN)[1] == "ETHUSDT: removal requested (its data is kept)."
    [request] = seen
    assert (request.method, request.url.raw_path) == ("DELETE", b"/pairs/ETHUSDT")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_deleting_data_needs_the_typed_symbol_and_sends_it_as_confirm() -> None:
    seen: list[httpx.Request] = []
    api = _api(_accepted, seen)
    for typed in ("", "BTCUSDT", "ETHUSD", None, ["ETHUSDT"]):
        assert _purge(api, "ETHUSDT", typed, TOKEN)[1].startswith("Type ETHUSDT in the box")
    assert seen == []
    _, message, _, _, _, typed, _ = _purge(api, "ETHUSDT", " ethusdt ", None)
    assert message == "ETHUSDT: removal requested, and its data will be deleted." and typed == ""
    [request] = seen
    assert (request.method, request.url.path) == ("DELETE", "/pairs/ETHUSDT")
    assert dict(request.url.params) == {"purge": "true", "confirm": "ETHUSDT"}
    assert "authorization" not in request.headers


def test_an_added_pair_reads_as_requested_at_once() -> None:
    seen: list[httpx.Request] = []
    api = _api(lambda _: httpx.Response(202, json={"symbol": "ETHUSDT", "command_id": 4}), seen)
    pending, message, new_pair, *_, progress = _add(api, " ethusdt ", TOKEN)
    assert (pending, message, new_pair) == ("ETHUSDT", "", "")
    assert progress == "ETHUSDT: requested, waiting for ingestion to pick it up"
    [request] = seen
    assert (request.method, request.url.path, request.read()) == ("POST", "/pairs", b'{"symbol":"ethusdt"}')


@pytest.mark.parametrize("value", CRAFTED)
def test_a_selected_value_that_is_not_a_pair_is_never_asked_about_removed_or_deleted(value: object) -> None:
    seen: list[httpx.Request] = []
    api = _api(_accepted, seen)
    for attempt in (
        lambda: _ask_removal(value),
        lambda: _remove(api, value, TOKEN),
        lambda: _purge(api, value, value, TOKEN),
    ):
        with pytest.raises(ApiProblem, match="is not a pair symbol"):
            attempt()
    assert seen == []


def test_nothing_selected_is_a_sentence() -> None:
    seen: list[httpx.Request] = []
    api = _api(_accepted, seen)
    for outputs in (_ask_removal(None), _remove(api, None, TOKEN), _purge(api, "", "", TOKEN)):
        assert outputs[1] == "No pair selected." and outputs[3] is no_update
    assert seen == []


def test_the_page_shows_the_api_url_without_credentials_or_query() -> None:
    assert shown_url("http://user:secret@api.internal:8000/base?token=x#f") == "http://api.internal:8000/base"
    assert shown_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
