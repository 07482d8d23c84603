"""Logging set-up: human-readable by default, one JSON object per line with ``--log-json``.

Context such as the pair travels as ``extra={"pair": ...}`` and becomes a field of its own.

Ray starts the processes that do most of the work (pair actors, the supervisor, the training
scheduler, Serve replicas) from the environment of the process that started Ray, not from its
command line. So :func:`setup_logging` leaves the level and format it chose in the environment
(``CRYPTOCAST_LOG_LEVEL``, ``CRYPTOCAST_LOG_JSON``, the settings' own variables), and each of those
processes calls :func:`setup_worker_logging` when it starts, logging the same way as the command
that started the system.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

LEVEL_ENV = "CRYPTOCAST_LOG_LEVEL"
JSON_ENV = "CRYPTOCAST_LOG_JSON"
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})  # what the settings read as true
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        return line + ("  " + " ".join(f"{k}={v}" for k, v in extras.items()) if extras else "")


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("asyncio", "websockets", "urllib3", "alembic", "pgserver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    os.environ[LEVEL_ENV] = level.upper()  # for the processes Ray starts from here
    os.environ[JSON_ENV] = "true" if json_lines else "false"


def setup_worker_logging() -> None:
    """In a process Ray started (an actor, a Serve replica): log as the starting process chose."""
    json_lines = os.environ.get(JSON_ENV, "").strip().lower() in _TRUE
    setup_logging(os.environ.get(LEVEL_ENV) or "INFO", json_lines)
