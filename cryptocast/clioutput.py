"""What a command prints for a script: ``--json`` and :func:`emit`, and progress bars for a person.

With ``--json`` a command writes one JSON document on stdout and nothing else there (messages and
logs go to stderr), so ``cryptocast check --json | jq .`` works whatever the terminal's width:
times are ISO-8601 in UTC, numbers stay numbers, and NaN or infinity become null (JSON has neither).
A progress bar is drawn on stderr only for a person watching it: never with ``--json``, never when
stderr is a pipe or a file.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cryptocast.cliutil import console

Json = Annotated[
    bool, typer.Option("--json", help="print one JSON document on stdout (messages stay on stderr)")
]


def plain(value: object) -> object:
    """``value`` as JSON's types: mappings, lists, str, finite numbers, bool, null."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(v) for v in value]
    if isinstance(value, datetime):  # a naive time is UTC throughout the system
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"{type(value).__name__} has no JSON form")


def emit(document: Mapping[str, object] | Sequence[object]) -> None:
    """Write ``document`` to stdout as the command's one JSON document."""
    sys.stdout.write(json.dumps(plain(document), indent=1, allow_nan=False) + "\n")
    sys.stdout.flush()


def progress_bar(as_json: bool) -> Progress:
    """A rich progress bar on stderr; drawn only when stderr is a terminal and the output is not JSON."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json or not sys.stderr.isatty(),
        transient=True,
    )
