"""Keep the garbage collector's full passes off the live path of long-running processes.

CPython's collector walks every tracked object in its oldest generation on a full pass. A Ray
worker holds about 150,000 of them once Ray, gRPC, SQLAlchemy, asyncpg and python-binance are
imported, and a full pass over those took 80 ms here: every pair of a host then waits, and a
minute's candles all commit late together. Objects made while a process starts up live as long
as it does, so :func:`settle` moves them out of the collector's sight (``gc.freeze``); later
passes walk only what the process made since. Cycles among the frozen objects are never
collected, which costs nothing for objects that would never have been garbage.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect once, then freeze what survived; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
