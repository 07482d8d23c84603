"""Logs: one JSON object per line on request, with context such as the pair as its own field; the
processes Ray starts log the way the starting process chose."""

from __future__ import annotations

import json
import logging
import os

import pytest

from cryptocast.logs import JSON_ENV, LEVEL_ENV, setup_logging, setup_worker_logging


@pytest.fixture(autouse=True)
def _environment_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """``setup_logging`` leaves its choice in the environment for Ray's processes: undone after each test."""
    for name in (LEVEL_ENV, JSON_ENV):
        monkeypatch.delenv(name, raising=False)


def test_json_lines_carry_the_pair_as_a_field(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", json_lines=True)
    logging.getLogger("cryptocast.test").warning("backfill done: %d minutes", 42, extra={"pair": "BTCUSDT"})
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["msg"] == "backfill done: 42 minutes"
    assert entry["pair"] == "BTCUSDT"
    assert entry["level"] == "warning" and entry["logger"] == "cryptocast.test"


def test_text_lines_show_extras_and_respect_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("WARNING")
    log = logging.getLogger("cryptocast.test")
    log.info("hidden")
    log.error("shown", extra={"pair": "ETHUSDT"})
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "shown" in err and "pair=ETHUSDT" in err


def test_a_worker_logs_as_the_process_that_chose(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("warning", json_lines=True)
    assert (os.environ[LEVEL_ENV], os.environ[JSON_ENV]) == ("WARNING", "true")
    logging.getLogger().handlers[:] = []  # a fresh process: nothing configured yet
    setup_worker_logging()
    log = logging.getLogger("cryptocast.test")
    log.info("hidden")
    log.warning("shown")
    entries = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [e["msg"] for e in entries] == ["shown"]
