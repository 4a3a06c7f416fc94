"""Micro-benchmark: multipart parser throughput on one 10 MiB file part.

The body is fed the way the HTTP glue feeds it: appended to a bytearray in
64 KiB pieces, events pulled until NEED_DATA, consumed bytes deleted from the
front.  Prints the best of several runs in MB/s (10**6 bytes per second).

    .venv/bin/python bench/micro_multipart.py [--size-mib 10] [--piece-kib 64] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import time

from mgpy.limits import Limits
from mgpy.proto.multipart import NEED_DATA, MultipartParser

BOUNDARY = b"----WebKitFormBoundary7MA4YWxkTrZu0gW"


def make_body(size: int) -> bytes:
    """A browser-like body: one small field and one file part of random bytes."""
    data = random.Random(1).randbytes(size)
    return (
        b"--" + BOUNDARY + b"\r\n"
        b'Content-Disposition: form-data; name="title"\r\n\r\nholiday\r\n'
        b"--" + BOUNDARY + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
        b"--" + BOUNDARY + b"--\r\n"
    )


def parse(body: bytes, piece: int, limits: Limits) -> int:
    """Parse ``body`` fed in ``piece``-byte pieces; return the part data bytes seen."""
    p = MultipartParser(BOUNDARY, limits)
    buf = bytearray()
    got = 0
    for off in range(0, len(body), piece):
        buf += body[off : off + piece]
        eof = off + piece >= len(body)
        while True:
            ev, n = p.next_event(buf, eof)
            del buf[:n]
            if ev is NEED_DATA:
                break
            if isinstance(ev, bytes):
                got += len(ev)
    assert p.done
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=10)
    ap.add_argument("--piece-kib", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    body = make_body(args.size_mib << 20)
    limits = Limits()
    best = float("inf")
    for _ in range(args.runs):
        t0 = time.perf_counter()
        got = parse(body, args.piece_kib << 10, limits)
        best = min(best, time.perf_counter() - t0)
    assert got == (args.size_mib << 20) + len(b"holiday")
    print(
        f"multipart: {len(body) / 1e6:.1f} MB body in {args.piece_kib} KiB pieces, "
        f"part_data_size {limits.part_data_size >> 10} KiB: "
        f"{len(body) / best / 1e6:.0f} MB/s (best of {args.runs}, {best * 1e3:.1f} ms)"
    )


if __name__ == "__main__":
    main()
