"""Commands that destroy data go ahead only when asked to: ``--yes``, or a yes typed at a terminal.

A script, a pipe or a CI job cannot answer a prompt, and a default must never be the thing that
drops tables: without ``--yes`` a run whose input is not a terminal refuses, with a non-zero exit,
before it has changed anything.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cryptocast.cliutil import fail

Yes = Annotated[bool, typer.Option("--yes", "-y", help="go ahead without asking (this deletes data)")]


def confirm(action: str, yes: bool) -> None:
    """Return when ``action`` (a sentence fragment: "drop …") may go ahead; else end the command."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise fail(
            f"refusing to {action} without --yes (nothing was changed); run it again with --yes to go ahead"
        )
    if not typer.confirm(f"This will {action}. Go ahead?", default=False, err=True):
        raise fail("cancelled (nothing was changed)")
