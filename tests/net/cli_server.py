"""The CLI's ``Server`` run in-process: built from its real argument parser, polled by the test.

``running_cli(root)`` starts it on 127.0.0.1 (port 0) serving ``root`` and yields the
server and its port; the Manager is closed on the way out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mgpy.__main__ import Server, build_parser


@contextmanager
def running_cli(root: Path, *extra: str) -> Iterator[tuple[Server, int]]:
    """``python -m mgpy --root ROOT --listen 127.0.0.1:0 --log-level warning EXTRA...``."""
    args = build_parser().parse_args(
        ["--root", str(root), "--listen", "127.0.0.1:0", "--log-level", "warning", *extra]
    )
    srv = Server(args)
    srv.start()
    assert srv.listener is not None
    try:
        yield srv, srv.listener.local[1]
    finally:
        srv.mgr.close()
