"""The exit statuses of every ``cryptocast`` command, one table for scripts to branch on.

A script that runs ``cryptocast check`` or ``cryptocast db status`` from cron or CI must tell "the
data has a problem" from "I called it wrong" from "the database is down" without reading the
message; each status means the same thing in every command.
"""

from __future__ import annotations

OK = 0
"""The command did what was asked (and a check found nothing wrong)."""
FAILURE = 1
"""It ran and failed, was refused or cancelled, or a check found problems (missing minutes, duplicates)."""
USAGE = 2
"""The command line or the configuration is wrong: an unknown option, a bad value, a malformed or
unknown pair name, an invalid setting. Nothing was done."""
UNREACHABLE = 3
"""The database or the exchange cannot be reached, or refuses the connection."""

EPILOG = (
    f"Exit status: {OK} ok; {FAILURE} failed or found problems; {USAGE} bad usage, pair or setting; "
    f"{UNREACHABLE} database or exchange unreachable."
)
