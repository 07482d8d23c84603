"""What a process made to start is frozen out of the collector's full passes; later garbage is not."""

from __future__ import annotations

import gc
import weakref

from cryptocast import heap


class Node:
    other: object = None


def test_settle_freezes_the_start_up_heap_and_later_cycles_are_still_collected() -> None:
    try:
        before = len(gc.get_objects())
        assert heap.settle() >= before // 2, "what the process holds now is frozen"
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        gc.collect()
        assert ref() is None, "a cycle made after settling is still collected"
    finally:
        gc.unfreeze()  # the test process goes on as it was
