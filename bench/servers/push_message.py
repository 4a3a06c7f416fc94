"""The messages every WebSocket bench server pushes, built the same way in each.

``push_message(size)`` is a JSON text of exactly ``size`` bytes whose first member is
the push's start time (``time.monotonic()``, which the load generator reads on the same
machine) followed by sensor readings: it compresses like a dashboard's push (about 4x
at 1 KiB).  ``size`` 0 keeps the original message: ``repr(time.monotonic())``.
"""

from __future__ import annotations

import time


def push_message(size: int) -> str:
    """The text to push for a "push SIZE" request, time-stamped now."""
    stamp = repr(time.monotonic())
    if not size:
        return stamp
    head = '{"t":' + stamp + ',"r":['
    items = []
    n = len(head) + 2
    i = 0
    while True:
        item = ("," if i else "") + f'{{"id":{i},"temp":{18 + i * 37 % 9}.{i * 53 % 10}}}'
        if n + len(item) > size:
            break
        items.append(item)
        n += len(item)
        i += 1
    if n > size:
        raise ValueError(f"push size {size} is too small for a time stamp")
    return head + "".join(items) + " " * (size - n) + "]}"


def push_size(text: str | bytes) -> int | None:
    """The size a "push" / "push SIZE" request asks for, or None for any other text."""
    if text[:4] not in ("push", b"push"):
        return None  # (the echo path: one slice and one comparison)
    if len(text) == 4:
        return 0
    return int(text[5:])
