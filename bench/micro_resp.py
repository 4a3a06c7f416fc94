"""Micro-benchmarks of the RESP codec (mgpy/proto/resp.py): pure Python against hiredis.

Run: ``.venv/bin/python bench/micro_resp.py [--quick]``.  Prints microseconds per reply
(best of 7 timeit repeats) for the pure ``RespReader``, for ``HiredisReader`` (hiredis
behind the same interface, with the event typing on top) and for a bare ``hiredis.Reader``
when hiredis is importable, each fed the same bytes the way the I/O layer does (whole
64 KiB reads, every event drained).  Also the encoder: ``pack_pipeline`` against
``hiredis.pack_command``.  The accelerator is worth offering only if ``HiredisReader``
beats ``RespReader`` on the workloads the Redis bridge sees: pipelined small replies and
Pub/Sub messages.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable

from mgpy.proto import resp, resp_hiredis

READ_SIZE = 64 * 1024
PIPELINE = 1000


def _pipeline_replies() -> bytes:
    """Replies to a pipeline of SET / INCR / GET with 16-byte values."""
    one = b"+OK\r\n:1234\r\n$16\r\n" + b"v" * 16 + b"\r\n"
    return one * (PIPELINE // 3)


def _pubsub_messages(resp3: bool) -> bytes:
    """Pub/Sub messages of 100 bytes on a 12-byte channel, RESP2 arrays or RESP3 pushes."""
    head = b">3\r\n" if resp3 else b"*3\r\n"
    one = head + b"$7\r\nmessage\r\n$12\r\nchat:room:42\r\n$100\r\n" + b"m" * 100 + b"\r\n"
    return one * PIPELINE


def _hgetall_resp3() -> bytes:
    """A RESP3 map of 100 field/value pairs (HGETALL)."""
    pairs = b"".join(b"$8\r\nfield%03d\r\n:%d\r\n" % (i, i) for i in range(100))
    return (b"%100\r\n" + pairs) * 10


def _big_bulk() -> bytes:
    """One 4 MiB GET reply."""
    return b"$%d\r\n%s\r\n" % (4 << 20, b"b" * (4 << 20))


def _drain(make: Callable[[], object], data: bytes, pubsub: bool) -> Callable[[], int]:
    chunks = [data[i : i + READ_SIZE] for i in range(0, len(data), READ_SIZE)]

    def run() -> int:
        reader = make()
        if pubsub:
            reader.pubsub = True  # type: ignore[attr-defined]
        feed = reader.feed  # type: ignore[attr-defined]
        nxt = reader.next_event  # type: ignore[attr-defined]
        count = 0
        for chunk in chunks:
            feed(chunk)
            while nxt() is not resp.NEED_DATA:
                count += 1
        return count

    return run


def _bare_hiredis(data: bytes) -> Callable[[], int]:
    import hiredis

    chunks = [data[i : i + READ_SIZE] for i in range(0, len(data), READ_SIZE)]

    def run() -> int:
        reader = hiredis.Reader()
        count = 0
        for chunk in chunks:
            reader.feed(chunk)
            while reader.gets() is not False:
                count += 1
        return count

    return run


def _per_reply(fn: Callable[[], int], number: int) -> float:
    """Best-of-7 microseconds per event."""
    events = fn()
    best = min(timeit.repeat(fn, number=number, repeat=7)) / number
    return best / events * 1e6


def main() -> None:
    quick = "--quick" in sys.argv
    number = 3 if quick else 20
    workloads = [
        ("pipelined SET/INCR/GET replies", _pipeline_replies(), False),
        ("RESP2 pub/sub messages (100 B)", _pubsub_messages(False), True),
        ("RESP3 pub/sub pushes (100 B)", _pubsub_messages(True), False),
        ("RESP3 HGETALL map, 100 pairs", _hgetall_resp3(), False),
        ("one 4 MiB bulk string", _big_bulk(), False),
    ]
    off = "not installed, or MGPY_NO_EXTENSIONS set"
    state = "in use" if resp_hiredis.HIREDIS_AVAILABLE else off
    print(f"hiredis: {state}")
    print(f"{'workload':34} {'pure us':>9} {'hiredis us':>11} {'bare us':>9} {'speed-up':>9}")
    for name, data, pubsub in workloads:
        pure = _per_reply(_drain(resp.RespReader, data, pubsub), number)
        if resp_hiredis.HIREDIS_AVAILABLE:
            fast = _per_reply(_drain(resp_hiredis.HiredisReader, data, pubsub), number)
            bare = _per_reply(_bare_hiredis(data), number)
            print(f"{name:34} {pure:9.3f} {fast:11.3f} {bare:9.3f} {pure / fast:8.1f}x")
        else:
            print(f"{name:34} {pure:9.3f} {'-':>11} {'-':>9} {'-':>9}")
    commands = [("SET", f"key:{i}", b"v" * 16) for i in range(PIPELINE)]
    pure_pack = _per_reply(lambda: len(resp.pack_pipeline(commands)) and PIPELINE, number)
    line = f"{'encode 1000 SET commands':34} {pure_pack:9.3f}"
    if resp_hiredis.HIREDIS_AVAILABLE:
        import hiredis

        def hi_pack() -> int:
            b"".join([hiredis.pack_command(c) for c in commands])
            return PIPELINE

        fast_pack = _per_reply(hi_pack, number)
        line += f" {fast_pack:11.3f} {'':>9} {pure_pack / fast_pack:8.1f}x"
    print(line)


if __name__ == "__main__":
    main()
