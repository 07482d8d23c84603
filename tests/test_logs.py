"""Logs: one JSON object per line on request, with context such as the pair as its own field."""

from __future__ import annotations

import json
import logging

import pytest

from cryptocast.logs import setup_logging


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
